"""Enterprise month: the ledger of one organisation for one month (calc_carbon_rollup by scope
and carrier), product intensities, and the year's budget burn-down (calc_budget)."""

from __future__ import annotations

from carbonflow.grafana.common import (
    COVERAGE_COLUMNS,
    LOCATION,
    MARKET,
    SETTLED_TCO2E,
    STATUS_CELL,
    STATUS_MAPPINGS,
    month_variable,
    org_variable,
    site_variable,
)
from carbonflow.grafana.model import Dashboard, Override, Panel, Row, Sql

_MONTH = """site_id = '$site' AND org_id = '$org' AND grain = 'month'
  AND period_start = '$period'::timestamptz"""

TOTAL = (
    """SELECT {settled} AS "{label}" FROM calc_carbon_rollup
WHERE {basis} AND """
    + _MONTH
)

ENERGY = (
    f"""SELECT sum(energy_tce) FILTER (WHERE {LOCATION}) AS "energy" FROM calc_carbon_rollup
WHERE """
    + _MONTH
)

LEDGER = (
    """SELECT scope, carrier, category, basis, sum(activity) AS activity, activity_unit,
  sum(energy_tce) AS energy_tce, sum(tco2e) AS tco2e, min(completeness) AS completeness,
  string_agg(DISTINCT factor_key || ' v' || factor_version, ', ') AS factors
FROM calc_carbon_rollup
WHERE """
    + _MONTH
    + """
GROUP BY scope, carrier, category, basis, activity_unit
ORDER BY scope, carrier, category, basis"""
)

BY_SCOPE = f"""SELECT scope || ' · ' || carrier AS metric, sum(tco2e) AS "CO2e"
FROM calc_carbon_rollup
WHERE {LOCATION} AND {_MONTH}
GROUP BY 1 ORDER BY 2 DESC"""

INTENSITY = f"""SELECT i.indicator, i.value, i.unit, i.numerator, i.denominator,
  i.undefined_reason AS "undefined because", i.status, {COVERAGE_COLUMNS}
FROM calc_indicator i
WHERE i.site_id = '$site' AND i.org_id = '$org' AND i.grain = 'month'
  AND i.period_start = '$period'::timestamptz
ORDER BY i.indicator"""

# Burn-down of the CO2 budget of the month's year: what is left after each day, from the daily
# market-based CO2 the budget counts (carbonflow/domain/indicators/kpis.py: gas CO2, basis market
# or both).
BURN_DOWN = f"""WITH year AS (
  SELECT date_trunc('year', '$period'::timestamptz AT TIME ZONE s.timezone) AT TIME ZONE s.timezone
         AS start, extract(year FROM '$period'::timestamptz AT TIME ZONE s.timezone)::int AS y
  FROM site s WHERE s.site_id = '$site'),
daily AS (
  SELECT r.period_start, sum(r.gas_t) FILTER (WHERE r.gas = 'CO2' AND {MARKET}) AS co2_t
  FROM calc_carbon_rollup r, year
  WHERE r.site_id = '$site' AND r.org_id = '$org' AND r.grain = 'day'
    AND r.period_start >= year.start AND r.period_start < year.start + interval '1 year'
  GROUP BY 1)
SELECT d.period_start AS "time",
  b.budget - sum(coalesce(d.co2_t, 0)) OVER (ORDER BY d.period_start) AS "CO2 budget left"
FROM daily d, year, calc_budget b
WHERE b.site_id = '$site' AND b.org_id = '$org' AND b.quantity = 'co2_t' AND b.year = year.y
ORDER BY 1"""

BUDGETS = """SELECT year, quantity, unit, budget, consumed, remaining,
  used_fraction AS used, elapsed_fraction AS elapsed, projected_total AS projected,
  projected_exhaustion AS "exhausted on", status, explanation
FROM calc_budget
WHERE site_id = '$site' AND org_id = '$org'
  AND year = (SELECT extract(year FROM '$period'::timestamptz AT TIME ZONE timezone)::int
              FROM site WHERE site_id = '$site')
ORDER BY quantity"""


def dashboard() -> Dashboard:
    table_opts = {"showHeader": True, "cellHeight": "sm"}
    return Dashboard(
        uid="carbonflow-enterprise-month",
        title="Enterprise — monthly ledger",
        folder="enterprise",
        description="One organisation's month: emissions by scope and carrier, intensity, budget.",
        tags=("carbonflow", "enterprise", "ledger"),
        time_from="now/y",
        time_to="now/y",
        refresh="",
        variables=(site_variable(), org_variable(multi=False), month_variable("= '$site'")),
        items=(
            Row("Month totals"),
            Panel(
                "stat", "CO2e, location-based", "suffix: tCO₂e",
                [Sql(TOTAL.format(settled=SETTLED_TCO2E, basis=LOCATION, label="location"),
                     "table")],
                width=6, height=4, decimals=1,
            ),
            Panel(
                "stat", "CO2e, market-based", "suffix: tCO₂e",
                [Sql(TOTAL.format(settled=SETTLED_TCO2E, basis=MARKET, label="market"),
                     "table")],
                width=6, height=4, decimals=1,
            ),
            Panel(
                "stat", "Energy", "suffix: tce", [Sql(ENERGY, "table")],
                width=6, height=4, decimals=1,
                description="comprehensive energy consumption, equivalent value (tce)",
            ),
            Panel(
                "piechart", "CO2e by scope and carrier (location-based)", "suffix: tCO₂e",
                [Sql(BY_SCOPE, "table")], width=6, height=4,
                options={"pieType": "donut", "legend": {"displayMode": "list"},
                         "reduceOptions": {"values": True, "calcs": [], "fields": ""}},
            ),
            Row("Ledger (碳排放台账)"),
            Panel(
                "table", "Ledger by scope, carrier and source", "none",
                [Sql(LEDGER, "table")], width=24, height=8, options=table_opts,
                overrides=(
                    Override("energy_tce", {"unit": "suffix: tce", "decimals": 3}),
                    Override("tco2e", {"unit": "suffix: tCO₂e", "decimals": 3}),
                    Override("activity", {"decimals": 1}),
                    Override("completeness", {"unit": "percentunit"}),
                ),
                description="calc_carbon_rollup, grain month; location / market / both views",
            ),
            Row("Intensity and budget"),
            Panel(
                "table", "Intensity and attributed totals", "none", [Sql(INTENSITY, "table")],
                options=table_opts, mappings=STATUS_MAPPINGS,
                overrides=(STATUS_CELL, Override("completeness", {"unit": "percentunit"})),
            ),
            Panel(
                "timeseries", "CO2 budget burn-down", "suffix: tCO₂", [Sql(BURN_DOWN)],
                description="budget minus cumulative market-based CO2, day by day",
                custom={"fillOpacity": 15},
            ),
            Panel(
                "table", "Budgets of the year", "none", [Sql(BUDGETS, "table")], width=24, height=5,
                options=table_opts, mappings=STATUS_MAPPINGS,
                overrides=(
                    STATUS_CELL,
                    Override("used", {"unit": "percentunit"}),
                    Override("elapsed", {"unit": "percentunit"}),
                    Override("exhausted on", {"unit": "dateTimeAsIso"}),
                ),
            ),
        ),
    )  # fmt: skip
