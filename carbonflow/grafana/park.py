"""Park operations, live: power by carrier, PV and wind, emission rate, zero-carbon share, KPIs
against targets, early warnings (``calc_event``)."""

from __future__ import annotations

from carbonflow.grafana.common import (
    COVERAGE_COLUMNS,
    LOCATION,
    MARKET,
    SETTLED_TCO2E,
    SHARE_THRESHOLDS,
    STATUS_CELL,
    STATUS_MAPPINGS,
    kpi_period_variable,
    org_variable,
    site_variable,
)
from carbonflow.grafana.model import Dashboard, Override, Panel, Row, Sql

# Gauges of power [kW] after the device multiplier (CT/PT ratio), averaged per device over a
# bucket, then added up per series: a device reporting more often does not weigh more.
POWER_BY = """SELECT time, metric, sum(kw) AS "power" FROM (
  SELECT $__timeGroupAlias(r.ts, $__interval), {series} AS metric, d.device_pk,
         avg(r.value * d.multiplier) AS kw
  FROM reading r JOIN device d USING (device_pk) JOIN metric m USING (metric_id)
  WHERE d.site_id = '$site' AND m.name = 'power_kw' AND {where} AND $__timeFilter(r.ts)
  GROUP BY 1, 2, 3) per_device
GROUP BY 1, 2 ORDER BY 1, 2"""

LATEST_POWER = """SELECT sum(kw) AS "power" FROM (
  SELECT DISTINCT ON (d.device_pk) r.value * d.multiplier AS kw
  FROM reading r JOIN device d USING (device_pk) JOIN metric m USING (metric_id)
  WHERE d.site_id = '$site' AND m.name = 'power_kw' AND {where} AND $__timeFilter(r.ts)
  ORDER BY d.device_pk, r.ts DESC) latest"""

# Rate over a bucket = the bucket's 15-min tCO2e / its hours (0.25 h per 15-min interval).
EMISSION_RATE = f"""SELECT $__timeGroupAlias(start_ts, $__interval),
  sum(tco2e) FILTER (WHERE {LOCATION}) / (count(DISTINCT start_ts) * 0.25) AS "location-based",
  sum(tco2e) FILTER (WHERE {MARKET}) / (count(DISTINCT start_ts) * 0.25) AS "market-based"
FROM calc_carbon
WHERE site_id = '$site' AND $__timeFilter(start_ts)
GROUP BY 1 ORDER BY 1"""

# Physical zero-carbon share: zero-carbon tce booked on 'both' rows (self-generation, direct
# supply) over all energy (location and both rows), as ACCOUNTING counts energy once.
ZERO_CARBON_SHARE = f"""SELECT $__timeGroupAlias(start_ts, $__interval),
  sum(zero_carbon_tce) FILTER (WHERE basis = 'both')
    / nullif(sum(energy_tce) FILTER (WHERE {LOCATION}), 0) AS "zero-carbon share"
FROM calc_carbon
WHERE site_id = '$site' AND $__timeFilter(start_ts)
GROUP BY 1 ORDER BY 1"""

ORG_POWER = """SELECT $__timeGroupAlias(c.start_ts, $__interval), o.name AS metric,
  sum(c.quantity) / (count(DISTINCT c.start_ts) * 0.25) AS "power"
FROM calc_interval c JOIN device d USING (device_pk) JOIN metric m USING (metric_id)
  JOIN organisation o ON o.site_id = d.site_id AND o.org_id = d.org_id
WHERE d.site_id = '$site' AND d.org_id IN ($org) AND d.role = 'consumption'
  AND d.carrier = 'electricity' AND m.name = 'energy_import_kwh' AND $__timeFilter(c.start_ts)
GROUP BY 1, 2 ORDER BY 1, 2"""

KPIS = f"""SELECT i.indicator, i.value, i.unit, i.target_comparator AS comparator,
  i.target_threshold AS target, i.status, {COVERAGE_COLUMNS},
  to_char(i.period_start AT TIME ZONE s.timezone, 'YYYY-MM-DD') AS "period from"
FROM calc_indicator i JOIN site s USING (site_id)
WHERE i.site_id = '$site' AND i.org_id = '' AND i.grain = '$period'
  AND i.period_start = (SELECT max(period_start) FROM calc_indicator
                        WHERE site_id = '$site' AND org_id = '' AND grain = '$period')
ORDER BY i.indicator"""

EVENTS = """SELECT raised_at AS "raised", kind, subject, org_id AS organisation, grain,
  previous_status AS "from", status, value, threshold, message
FROM calc_event
WHERE site_id = '$site'
ORDER BY raised_at DESC, event_id DESC LIMIT 200"""

KPI_TODAY = """SELECT value AS "zero-carbon share" FROM calc_indicator
WHERE site_id = '$site' AND org_id = '' AND grain = 'day'
  AND indicator = 'zero_carbon_energy_share'
ORDER BY period_start DESC LIMIT 1"""

# Net import is settled over the period (docs/calc.md): a net-exporting range has purchased
# electricity 0, never negative scope 2; the stored 15-min rows stay signed.
EMISSIONS_RANGE = f"""SELECT {SETTLED_TCO2E} AS "CO2e" FROM calc_carbon
WHERE site_id = '$site' AND {LOCATION} AND $__timeFilter(start_ts)"""

_SOURCES = "d.role IN ('grid_import', 'green_import', 'generation_pv', 'generation_wind')"
_RENEWABLE = "d.role IN ('generation_pv', 'generation_wind')"


def dashboard() -> Dashboard:
    table_opts = {"showHeader": True, "cellHeight": "sm"}
    return Dashboard(
        uid="carbonflow-park-live",
        title="Park operations — live",
        folder="park",
        description="Zero-carbon park: power, renewables, emissions, KPIs and early warnings.",
        tags=("carbonflow", "park", "live"),
        time_from="now-24h",
        refresh="1m",
        variables=(site_variable("park"), org_variable(multi=True), kpi_period_variable()),
        items=(
            Row("Now"),
            Panel(
                "stat", "Grid import now", "kwatt",
                [Sql(LATEST_POWER.format(where="d.role = 'grid_import'"), "table")],
                width=6, height=4,
                description="latest power of the grid connections [kW]; negative: exporting",
            ),
            Panel(
                "stat", "PV and wind now", "kwatt",
                [Sql(LATEST_POWER.format(where=_RENEWABLE), "table")],
                width=6, height=4, description="latest output of PV and wind [kW]",
            ),
            Panel(
                "stat", "CO2e in range (location-based)", "suffix: tCO₂e",
                [Sql(EMISSIONS_RANGE, "table")], width=6, height=4, decimals=1,
            ),
            Panel(
                "stat", "Zero-carbon share, latest day", "percentunit",
                [Sql(KPI_TODAY, "table")], width=6, height=4, decimals=1,
                thresholds=SHARE_THRESHOLDS,
                description="calc_indicator zero_carbon_energy_share, grain day",
            ),
            Row("Power and emissions"),
            Panel(
                "timeseries", "Power by carrier and source", "kwatt",
                [Sql(POWER_BY.format(series="d.carrier || ' · ' || d.role", where=_SOURCES))],
                description="power_kw gauges of supplies and generation, after multipliers",
                custom={"fillOpacity": 10, "lineWidth": 1},
            ),
            Panel(
                "timeseries", "PV and wind output", "kwatt",
                [Sql(POWER_BY.format(series="d.role", where=_RENEWABLE))],
                custom={"fillOpacity": 30, "stacking": {"mode": "normal", "group": "A"}},
            ),
            Panel(
                "timeseries", "Emission rate", "suffix: tCO₂e/h",
                [Sql(EMISSION_RATE)],
                description="calc_carbon (15 min) per hour, location- and market-based; below 0 "
                "while the site exports (rows are stored signed, periods settle to ≥ 0)",
            ),
            Panel(
                "timeseries", "Zero-carbon energy share", "percentunit",
                [Sql(ZERO_CARBON_SHARE)], minimum=0, maximum=1,
                description="self-generated and directly supplied zero-carbon tce / all tce",
            ),
            Panel(
                "timeseries", "Electricity use by organisation", "kwatt",
                [Sql(ORG_POWER)], width=24,
                description="mean power from 15-min consumption intervals (calc_interval)",
                custom={"fillOpacity": 10, "stacking": {"mode": "normal", "group": "A"}},
            ),
            Row("Targets and warnings"),
            Panel(
                "table", "KPIs against targets", "none", [Sql(KPIS, "table")],
                options=table_opts, mappings=STATUS_MAPPINGS,
                overrides=(
                    STATUS_CELL,
                    Override("completeness", {"unit": "percentunit"}),
                    Override("value", {"decimals": 3}),
                ),
                description="calc_indicator of the site for the latest $period; value in its unit",
            ),
            Panel(
                "table", "Early warnings (calc_event)", "none", [Sql(EVENTS, "table")],
                options=table_opts, mappings=STATUS_MAPPINGS,
                overrides=(STATUS_CELL, Override("raised", {"unit": "dateTimeAsIso"})),
            ),
        ),
    )  # fmt: skip
