"""Regulator overview: every site, indicator compliance (calc_indicator) and completeness."""

from __future__ import annotations

from carbonflow.grafana.common import (
    COVERAGE_COLUMNS,
    LOCATION,
    SETTLED_TCO2E,
    STATUS_CELL,
    STATUS_MAPPINGS,
    site_variable,
)
from carbonflow.grafana.model import Dashboard, Override, Panel, Row, Sql, Threshold, Variable

SITES = """SELECT s.name AS site, s.kind, s.province,
  (SELECT count(*) FROM organisation o WHERE o.site_id = s.site_id) AS organisations,
  (SELECT count(*) FROM device d WHERE d.site_id = s.site_id AND d.active) AS devices,
  st.results_through AS "results through", st.last_received_at AS "last reading received"
FROM site s LEFT JOIN calc_site_state st USING (site_id)
WHERE s.site_id IN ($site)
ORDER BY s.name"""

COMPLIANCE = f"""SELECT s.name AS site, i.indicator, i.value, i.unit,
  i.target_comparator AS comparator, i.target_threshold AS target, i.status,
  {COVERAGE_COLUMNS}, i.target_source AS "target from"
FROM calc_indicator i JOIN site s USING (site_id)
WHERE i.site_id IN ($site) AND i.org_id = '' AND i.grain = 'month'
  AND i.period_start = '$period'::timestamptz
ORDER BY s.name, i.indicator"""

STATUS_COUNTS = """SELECT s.name || ' · ' || replace(i.status, '_', ' ') AS metric,
  count(*) AS "indicators"
FROM calc_indicator i JOIN site s USING (site_id)
WHERE i.site_id IN ($site) AND i.org_id = '' AND i.grain = 'month'
  AND i.period_start = '$period'::timestamptz
GROUP BY 1 ORDER BY 1"""

# Completeness per site from the interval rollups (share of 15-min device intervals measured;
# estimated and missing ones count as incomplete): of the whole month (a month in progress
# counts its remaining days as missing), and of the hours that have results so far.
COMPLETENESS = """SELECT s.name || ' · whole month' AS metric, avg(r.completeness) AS "completeness"
FROM calc_interval_rollup r JOIN device d USING (device_pk) JOIN site s USING (site_id)
WHERE d.site_id IN ($site) AND r.grain = 'month' AND r.period_start = '$period'::timestamptz
GROUP BY 1
UNION ALL
SELECT s.name || ' · hours with results', avg(r.completeness)
FROM calc_interval_rollup r JOIN device d USING (device_pk) JOIN site s USING (site_id)
WHERE d.site_id IN ($site) AND r.grain = 'hour' AND r.period_start >= '$period'::timestamptz
  AND r.period_start < '$period'::timestamptz + interval '1 month'
GROUP BY 1 ORDER BY 1"""

DAILY_CO2E = f"""SELECT r.period_start AS "time", s.name AS metric, {SETTLED_TCO2E} AS "CO2e"
FROM calc_carbon_rollup r JOIN site s USING (site_id)
WHERE r.site_id IN ($site) AND r.grain = 'day' AND {LOCATION}
  AND $__timeFilter(r.period_start)
GROUP BY 1, 2 ORDER BY 1, 2"""

EVENTS = """SELECT e.raised_at AS "raised", s.name AS site, e.kind, e.subject,
  e.org_id AS organisation, e.status, e.message
FROM calc_event e JOIN site s USING (site_id)
WHERE e.site_id IN ($site) AND e.status IN ('at_risk', 'off_track')
  AND e.raised_at >= '$period'::timestamptz
ORDER BY e.raised_at DESC LIMIT 200"""


def dashboard() -> Dashboard:
    table_opts = {"showHeader": True, "cellHeight": "sm"}
    month = Variable(
        name="period",
        label="Month",
        kind="query",
        query=(
            "SELECT DISTINCT to_char(r.period_start AT TIME ZONE s.timezone, 'YYYY-MM') AS __text,"
            " to_char(r.period_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
            " AS __value FROM calc_indicator r JOIN site s USING (site_id)"
            " WHERE r.grain = 'month' AND r.site_id IN ($site) ORDER BY 2 DESC"
        ),
        sort=2,
        description="a calendar month (site time zone) with indicator results",
    )
    return Dashboard(
        uid="carbonflow-regulator-overview",
        title="Regulator overview",
        folder="regulator",
        description="All sites: indicator compliance, completeness, daily emissions, warnings.",
        tags=("carbonflow", "regulator"),
        time_from="now-30d",
        refresh="5m",
        variables=(site_variable(multi=True), month),
        items=(
            Row("Sites"),
            Panel(
                "table", "Sites", "none", [Sql(SITES, "table")], width=24, height=6,
                options=table_opts,
                overrides=(
                    Override("results through", {"unit": "dateTimeAsIso"}),
                    Override("last reading received", {"unit": "dateTimeAsIso"}),
                ),
            ),
            Row("Compliance of the month"),
            Panel(
                "table", "Indicator compliance", "none", [Sql(COMPLIANCE, "table")],
                width=24, height=10, options=table_opts, mappings=STATUS_MAPPINGS,
                overrides=(
                    STATUS_CELL,
                    Override("completeness", {"unit": "percentunit"}),
                    Override("value", {"decimals": 4}),
                ),
            ),
            Panel(
                "bargauge", "Indicators by status", "suffix: indicators",
                [Sql(STATUS_COUNTS, "table")], decimals=0,
                options={"orientation": "horizontal", "displayMode": "basic",
                         "reduceOptions": {"values": True, "calcs": [], "fields": ""}},
            ),
            Panel(
                "bargauge", "Data completeness", "percentunit", [Sql(COMPLETENESS, "table")],
                minimum=0, maximum=1, decimals=1,
                thresholds=(Threshold(None, "red"), Threshold(0.95, "orange"),
                            Threshold(0.99, "green")),
                options={"orientation": "horizontal", "displayMode": "gradient",
                         "reduceOptions": {"values": True, "calcs": [], "fields": ""}},
                description="measured share of 15-min device intervals: month, and hours so far",
            ),
            Row("Emissions and warnings"),
            Panel(
                "timeseries", "Daily CO2e by site (location-based)", "suffix: tCO₂e",
                [Sql(DAILY_CO2E)], custom={"drawStyle": "bars", "fillOpacity": 60},
            ),
            Panel(
                "table", "Open warnings since the month began", "none", [Sql(EVENTS, "table")],
                options=table_opts, mappings=STATUS_MAPPINGS,
                overrides=(STATUS_CELL, Override("raised", {"unit": "dateTimeAsIso"})),
            ),
        ),
    )  # fmt: skip
