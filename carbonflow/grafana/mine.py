"""Mine operations: hoisting, kWh/t, methane drained / used / flared / vented and the
utilisation rate, CH4 concentrations, tCO2/t raw coal, KPIs and warnings."""

from __future__ import annotations

from carbonflow.grafana.common import (
    LOCATION,
    SHARE_THRESHOLDS,
    STATUS_CELL,
    STATUS_MAPPINGS,
    kpi_period_variable,
    org_variable,
    site_variable,
)
from carbonflow.grafana.model import Dashboard, Override, Panel, Row, Sql
from carbonflow.grafana.park import EVENTS, KPIS

GAUGE_BY_DEVICE = """SELECT $__timeGroupAlias(r.ts, $__interval), d.name AS metric,
  avg(r.value * d.multiplier) AS "{column}"
FROM reading r JOIN device d USING (device_pk) JOIN metric m USING (metric_id)
WHERE d.site_id = '$site' AND m.name = '{metric}' AND {where} AND $__timeFilter(r.ts)
GROUP BY 1, 2 ORDER BY 1, 2"""

HOISTING_NOW = """SELECT r.value * d.multiplier AS "hoisting" FROM reading r
  JOIN device d USING (device_pk) JOIN metric m USING (metric_id)
WHERE d.site_id = '$site' AND d.role = 'production' AND d.carrier = 'raw_coal'
  AND m.name = 'output_rate_t_h' AND $__timeFilter(r.ts)
ORDER BY r.ts DESC LIMIT 1"""

# Hourly electricity of production-system end uses over hourly raw coal, then per bucket the
# ratio of the sums (a ratio of averages would weigh idle hours like busy ones). GB 29444:
# production_system = false nodes (preparation plant, offices) are outside kWh/t raw coal.
KWH_PER_T = """SELECT $__timeGroupAlias(r.period_start, $__interval),
  sum(r.quantity) FILTER (WHERE d.role = 'consumption' AND d.carrier = 'electricity'
                          AND m.name = 'energy_import_kwh' AND n.production_system)
  / nullif(sum(r.quantity) FILTER (WHERE d.role = 'production' AND d.carrier = 'raw_coal'
                                   AND m.name = 'output_t'), 0) AS "kWh/t"
FROM calc_interval_rollup r JOIN device d USING (device_pk) JOIN metric m USING (metric_id)
  LEFT JOIN node n ON n.site_id = d.site_id AND n.node_id = d.node_id
WHERE d.site_id = '$site' AND r.grain = 'hour' AND $__timeFilter(r.period_start)
GROUP BY 1 ORDER BY 1"""

# Methane balance from 15-min CH4 volumes [Nm³] as a mean rate [Nm³/min]: 15 min per interval.
METHANE_FLOWS = """SELECT $__timeGroupAlias(c.start_ts, $__interval),
  replace(d.role, 'methane_', '') AS metric,
  sum(c.quantity) / (count(DISTINCT c.start_ts) * 15) AS "CH4"
FROM calc_interval c JOIN device d USING (device_pk) JOIN metric m USING (metric_id)
WHERE d.site_id = '$site' AND m.name = 'ch4_nm3'
  AND d.role IN ('methane_drained', 'methane_utilised', 'methane_flared', 'methane_vented')
  AND $__timeFilter(c.start_ts)
GROUP BY 1, 2 ORDER BY 1, 2"""

UTILISATION = """SELECT $__timeGroupAlias(c.start_ts, $__interval),
  sum(c.quantity) FILTER (WHERE d.role = 'methane_utilised')
  / nullif(sum(c.quantity) FILTER (WHERE d.role = 'methane_drained'), 0) AS "utilisation"
FROM calc_interval c JOIN device d USING (device_pk) JOIN metric m USING (metric_id)
WHERE d.site_id = '$site' AND m.name = 'ch4_nm3' AND $__timeFilter(c.start_ts)
GROUP BY 1 ORDER BY 1"""

# Location-based CO2e (the Chinese enterprise method, docs/calc.md) over raw coal, hourly.
CO2_PER_T = f"""WITH co2 AS (
  SELECT period_start, sum(tco2e) AS tco2e FROM calc_carbon_rollup
  WHERE site_id = '$site' AND grain = 'hour' AND {LOCATION} AND $__timeFilter(period_start)
  GROUP BY 1),
coal AS (
  SELECT r.period_start, sum(r.quantity) AS t FROM calc_interval_rollup r
    JOIN device d USING (device_pk) JOIN metric m USING (metric_id)
  WHERE d.site_id = '$site' AND d.role = 'production' AND d.carrier = 'raw_coal'
    AND m.name = 'output_t' AND r.grain = 'hour' AND $__timeFilter(r.period_start)
  GROUP BY 1)
SELECT $__timeGroupAlias(co2.period_start, $__interval),
  sum(co2.tco2e) / nullif(sum(coal.t), 0) AS "tCO2e/t"
FROM co2 JOIN coal USING (period_start)
GROUP BY 1 ORDER BY 1"""

LATEST_DAY_KPI = """SELECT value AS "{label}" FROM calc_indicator
WHERE site_id = '$site' AND org_id = '' AND grain = 'day' AND indicator = '{indicator}'
ORDER BY period_start DESC LIMIT 1"""

BUDGETS = """SELECT o.name AS organisation, b.year, b.quantity, b.unit, b.budget, b.consumed,
  b.used_fraction AS used, b.elapsed_fraction AS elapsed, b.projected_total AS projected,
  b.status
FROM calc_budget b JOIN organisation o USING (site_id, org_id)
WHERE b.site_id = '$site' AND b.org_id IN ($org)
ORDER BY b.year DESC, o.name, b.quantity"""

_METHANE_DRAINAGE = (
    "d.role IN ('methane_drained', 'methane_utilised', 'methane_flared', 'methane_vented')"
)


def dashboard() -> Dashboard:
    table_opts = {"showHeader": True, "cellHeight": "sm"}
    return Dashboard(
        uid="carbonflow-mine-ops",
        title="Mine operations",
        folder="mine",
        description="Coal mine: hoisting, energy per tonne, methane balance, carbon per tonne.",
        tags=("carbonflow", "mine", "live"),
        time_from="now-24h",
        refresh="1m",
        variables=(site_variable("mine"), org_variable(multi=True), kpi_period_variable()),
        items=(
            Row("Now"),
            Panel(
                "stat", "Hoisting (raw coal)", "suffix: t/h", [Sql(HOISTING_NOW, "table")],
                width=6, height=4, decimals=0, description="latest raw-coal scale rate [t/h]",
            ),
            Panel(
                "stat", "Electricity per tonne, latest day", "suffix: kWh/t",
                [Sql(LATEST_DAY_KPI.format(label="kWh/t", indicator="electricity_per_raw_coal"),
                     "table")],
                width=6, height=4, decimals=2,
            ),
            Panel(
                "stat", "Methane utilisation, latest day", "percentunit",
                [Sql(LATEST_DAY_KPI.format(label="utilisation",
                                           indicator="methane_utilisation_rate"), "table")],
                width=6, height=4, decimals=1, thresholds=SHARE_THRESHOLDS,
            ),
            Panel(
                "stat", "CO2e per tonne, latest day", "suffix: tCO₂e/t",
                [Sql(LATEST_DAY_KPI.format(label="tCO2e/t", indicator="co2_per_raw_coal"),
                     "table")],
                width=6, height=4, decimals=4,
            ),
            Row("Production and energy"),
            Panel(
                "timeseries", "Hoisting and washing", "suffix: t/h",
                [Sql(GAUGE_BY_DEVICE.format(
                    column="t/h", metric="output_rate_t_h", where="d.role = 'production'"))],
                description="output_rate_t_h of the raw-coal and washed-coal scales",
            ),
            Panel(
                "timeseries", "Electricity per tonne of raw coal", "suffix: kWh/t",
                [Sql(KWH_PER_T)],
                description="production-system consumption meters / raw coal, hourly results",
            ),
            Row("Methane"),
            Panel(
                "timeseries", "Methane drained, used, flared, vented (pure CH4)",
                "suffix: Nm³/min", [Sql(METHANE_FLOWS)],
                description="15-min CH4 volumes of the drainage station meters (calc_interval)",
            ),
            Panel(
                "timeseries", "Methane utilisation rate", "percentunit", [Sql(UTILISATION)],
                minimum=0, maximum=1, description="CH4 utilised / CH4 drained, metered volumes",
            ),
            Panel(
                "timeseries", "CH4 concentration in drainage gas", "percent",
                [Sql(GAUGE_BY_DEVICE.format(
                    column="CH4", metric="ch4_pct", where=_METHANE_DRAINAGE))],
            ),
            Panel(
                "timeseries", "CH4 concentration in return air", "percent",
                [Sql(GAUGE_BY_DEVICE.format(
                    column="CH4", metric="ch4_pct", where="d.role = 'methane_ventilation'"))],
                decimals=3,
            ),
            Row("Carbon"),
            Panel(
                "timeseries", "CO2e per tonne of raw coal (location-based)", "suffix: tCO₂e/t",
                [Sql(CO2_PER_T)], width=24,
            ),
            Panel(
                "table", "KPIs against targets", "none", [Sql(KPIS, "table")],
                options=table_opts, mappings=STATUS_MAPPINGS,
                overrides=(
                    STATUS_CELL,
                    Override("completeness", {"unit": "percentunit"}),
                    Override("value", {"decimals": 3}),
                ),
            ),
            Panel(
                "table", "Budgets", "none", [Sql(BUDGETS, "table")],
                options=table_opts, mappings=STATUS_MAPPINGS,
                overrides=(
                    STATUS_CELL,
                    Override("used", {"unit": "percentunit"}),
                    Override("elapsed", {"unit": "percentunit"}),
                ),
            ),
            Panel(
                "table", "Early warnings (calc_event)", "none", [Sql(EVENTS, "table")],
                width=24, options=table_opts, mappings=STATUS_MAPPINGS,
                overrides=(STATUS_CELL, Override("raised", {"unit": "dateTimeAsIso"})),
            ),
        ),
    )  # fmt: skip
