"""Pieces the dashboards share: template variables and SQL fragments over the calc schema.

Conventions of every SQL query here (Grafana's PostgreSQL data source, raw SQL):

- time series return a ``time`` column (``$__timeGroupAlias``), a ``metric`` column naming the
  series when there are several, and one numeric column; tables return plain columns;
- the site is ``'$site'`` (a single-value variable is written unquoted), or ``IN ($site)`` where
  the variable is multi-value (Grafana writes a quoted list);
- periods are the calc service's: ``period_start`` of the site's local day / month, as stored.
"""

from __future__ import annotations

from carbonflow.grafana.model import Override, Threshold, Variable
from carbonflow.storage.rollup import in_view

# Status colours of calc_indicator / calc_budget / calc_event
# (carbonflow/domain/indicators/kpis.py).
STATUS_MAPPINGS = (
    {
        "type": "value",
        "options": {
            "on_track": {"color": "green", "index": 0, "text": "on track"},
            "at_risk": {"color": "orange", "index": 1, "text": "at risk"},
            "off_track": {"color": "red", "index": 2, "text": "off track"},
            "insufficient_data": {
                "color": "blue",
                "index": 3,
                "text": "insufficient data · 数据不足",
            },
            "no_target": {"color": "text", "index": 4, "text": "no target"},
        },
    },
)
# An indicator's coverage and why it is not conclusive (calc_indicator.coverage,
# docs/accounting.md).
COVERAGE_COLUMNS = (
    "i.completeness AS coverage,\n"
    "  (i.coverage->>'days_with_data')::int AS \"days with data\",\n"
    "  i.coverage->>'reason_en' AS \"insufficient because\""
)
STATUS_CELL = Override("status", {"custom.cellOptions": {"type": "color-background"}})
SHARE_THRESHOLDS = (Threshold(None, "red"), Threshold(0.3, "orange"), Threshold(0.6, "green"))

# Carbon rows by view: scope 1 and heat are booked once as 'both' (docs/calc.md).
LOCATION = in_view("location")
MARKET = in_view("market")
# CO2e of a period with net import settled (docs/calc.md, balance.settle_period): purchased
# electricity summed over the period, 0 when the period exported more than it imported.
SETTLED_TCO2E = (
    "coalesce(sum(tco2e) FILTER (WHERE category <> 'purchased_electricity'), 0)"
    " + greatest(coalesce(sum(tco2e) FILTER (WHERE category = 'purchased_electricity'), 0), 0)"
)


def site_variable(*kinds: str, multi: bool = False) -> Variable:
    where = f" WHERE kind IN ({', '.join(repr(k) for k in kinds)})" if kinds else ""
    return Variable(
        name="site",
        label="Site",
        kind="query",
        query=f"SELECT name AS __text, site_id AS __value FROM site{where} ORDER BY name",
        multi=multi,
        include_all=multi,
        description="sites of the registry (carbonflow sites load)",
    )


def org_variable(*, multi: bool) -> Variable:
    return Variable(
        name="org",
        label="Organisation",
        kind="query",
        query=(
            "SELECT name AS __text, org_id AS __value FROM organisation "
            "WHERE site_id = '$site' ORDER BY name"
        ),
        multi=multi,
        include_all=multi,
        description="organisations of the site (the enterprises of a park)",
    )


def kpi_period_variable() -> Variable:
    return Variable(
        name="period",
        label="KPI period",
        kind="custom",
        query="day,month,year",
        current="month",
        description="grain of the indicators shown: the latest day, month or year with results",
    )


def month_variable(site_filter: str) -> Variable:
    """Months with results, newest first; the value is the month's start instant (UTC)."""
    return Variable(
        name="period",
        label="Month",
        kind="query",
        query=(
            "SELECT DISTINCT to_char(r.period_start AT TIME ZONE s.timezone, 'YYYY-MM') AS __text,"
            " to_char(r.period_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
            " AS __value FROM calc_carbon_rollup r JOIN site s USING (site_id)"
            f" WHERE r.grain = 'month' AND r.site_id {site_filter} ORDER BY 2 DESC"
        ),
        sort=2,
        description="a calendar month in the site's time zone (calc_carbon_rollup, grain month)",
    )
