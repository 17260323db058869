"""Response schemas of ``/api/v1/sites/{site_id}/flows``: the energy → carbon → product graph of
a site and period, as Sankey nodes and links (docs/api.md, "Flows").

Every quantity carries its unit in its name (``energy_tce``, ``tco2e_location``, ``co2_t_market``)
or, for a link's metered quantity whose unit depends on the carrier (kWh, Nm3, GJ, t), in
``quantity_unit`` next to it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class FlowQuantities(_Out):
    """The six attributed quantities (carbonflow/domain/flows/graph.py ``COMPONENTS``)."""

    energy_tce: float = Field(description="energy [tce]")
    zero_carbon_tce: float = Field(description="of which zero-carbon energy [tce]")
    tco2e_location: float = Field(description="greenhouse gases, location-based [tCO2e]")
    tco2e_market: float = Field(description="greenhouse gases, market-based [tCO2e]")
    co2_t_location: float = Field(description="CO2 alone, location-based [t]")
    co2_t_market: float = Field(description="CO2 alone, market-based [t]")


class FlowNodeOut(_Out):
    node_id: str = Field(
        description="a node of the site document, or a virtual one: `emission:<category>` "
        "(emissions happening inside the site), `product:<id>`, `unallocated:<org>`, `site`, "
        "and for an enterprise key `outside:in` / `outside:out` (the rest of the site, collapsed)"
    )
    column: Literal["source", "node", "product"] = Field(
        description="Sankey column: where energy and carbon enter, pass, or end"
    )
    kind: str = Field(description="node kind (supply, distribution, process …) or the virtual kind")
    org_id: str | None
    name: str | None = Field(description="registry name, when the node is a registered node")
    name_zh: str | None


class FlowLinkOut(_Out):
    source: str
    target: str
    kind: str = Field(
        description="supply | emission | energy | allocation carry attributed energy and carbon "
        "(the Sankey); sink | methane | product | back_edge carry their metered quantity only"
    )
    carrier: str = Field(description="energy carrier; empty for allocation links")
    quantity: float | None = Field(
        description="metered quantity in `quantity_unit`; null when the link has no meter"
    )
    quantity_unit: str | None = Field(description="unit of `quantity` (kWh, Nm3, GJ, t …)")
    metered_energy_tce: float = Field(description="`quantity` converted to energy [tce]")
    attributed: FlowQuantities = Field(description="energy and carbon the link carries")


class FlowProductOut(_Out):
    product_id: str
    node_id: str
    org_id: str | None
    output: float = Field(description="output in the period, in `output_unit`")
    output_unit: str
    allocated: FlowQuantities
    intensity_location_tco2e_per_unit: float | None = Field(
        description="tco2e_location / output [tCO2e per output_unit]; null without output"
    )
    intensity_market_tco2e_per_unit: float | None
    allocation_basis: str = Field(description="how the carbon was allocated to the product")


class FactorUsedOut(_Out):
    carrier: str
    category: str
    basis: str = Field(description="location | market | both")
    factor_key: str
    factor_version: str | None
    factor_value: float | None = Field(description="in `factor_unit`")
    factor_unit: str | None


class FlowsOut(_Out):
    model_config = ConfigDict(
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "site_id": "shanxi-jinzhong-mine",
                    "scope": "site",
                    "org_id": None,
                    "period": "2026-11",
                    "start": "2026-10-31T16:00:00Z",
                    "end": "2026-11-30T16:00:00Z",
                    "timezone": "Asia/Shanghai",
                    "totals": {
                        "energy_tce": 4210.5,
                        "zero_carbon_tce": 310.2,
                        "tco2e_location": 21950.0,
                        "tco2e_market": 21700.4,
                        "co2_t_location": 9880.1,
                        "co2_t_market": 9630.5,
                    },
                    "nodes": [
                        {
                            "node_id": "grid-110kv",
                            "column": "source",
                            "kind": "supply",
                            "org_id": None,
                            "name": "110 kV grid",
                            "name_zh": "110kV电网",
                        }
                    ],
                    "links": [],
                    "products": [],
                    "factors": [
                        {
                            "carrier": "electricity",
                            "category": "purchased_electricity",
                            "basis": "location",
                            "factor_key": "grid.north",
                            "factor_version": "mee-nbs-electricity-2025-12-31",
                            "factor_value": 0.5703,
                            "factor_unit": "tCO2/MWh",
                        }
                    ],
                    "notes": [],
                }
            ]
        },
    )

    site_id: str
    scope: Literal["site", "organisation"] = Field(
        description="the whole site, or (enterprise keys) the key's organisation"
    )
    org_id: str | None = Field(description="the organisation of an `organisation` scope")
    period: str | None = Field(description="the `period` asked for (today, 24h, month, YYYY-MM)")
    start: datetime = Field(description="period start (inclusive), UTC")
    end: datetime = Field(description="period end (exclusive), UTC")
    timezone: str = Field(description="the site's zone, in which today and months are taken")
    totals: FlowQuantities = Field(
        description="the period's totals (site: inventory; organisation: attributed to it); "
        "the links into the product column add up to them, and for a site so do the links out "
        "of the source column"
    )
    nodes: list[FlowNodeOut]
    links: list[FlowLinkOut]
    products: list[FlowProductOut]
    factors: list[FactorUsedOut] = Field(description="emission factors used, with versions")
    notes: list[str] = Field(description="what could not be converted or allocated, and why")
    computed_at: datetime = Field(description="when this graph was computed (not stored)")


# --------------------------------------------------------------------------------------------
# The live view's summary (/api/v1/sites/{site_id}/view/summary)
# --------------------------------------------------------------------------------------------


class RecentCarbonOut(_Out):
    """The newest calculated hour of complete 15-min slots: what "now" means for calculated
    carbon (calc lags readings; the running quarter-hour is left out, it would read low)."""

    window_start: datetime | None = Field(description="first 15-min slot of the window, UTC")
    window_end: datetime | None = Field(description="end of the last slot (exclusive), UTC")
    slots: int = Field(description="15-min slots in the window (0–4; 0: nothing calculated)")
    energy_tce: float = Field(description="energy over the window [tce]")
    zero_carbon_tce: float = Field(description="of which zero-carbon [tce]")
    tco2e_location: float = Field(
        description="emissions over the window, location-based, scope 2 never below 0 [tCO2e]"
    )
    tco2e_market: float = Field(description="emissions over the window, market-based [tCO2e]")
    emission_rate_location_tco2e_h: float | None = Field(
        description="tco2e_location / window length, ≥ 0 [tCO2e/h]; null without slots"
    )
    emission_rate_market_tco2e_h: float | None
    net_export_tco2e_location: float = Field(
        description="negative scope 2 of a net-exporting window, shown apart, ≥ 0 [tCO2e]"
    )
    net_export_tco2e_market: float = Field(description="the same, market-based [tCO2e]")
    zero_carbon_share: float | None = Field(
        description="zero_carbon_tce / energy_tce (0–1); null without energy"
    )
    zero_carbon_share_pct: float | None = Field(description="the same in percent [%]")
    completeness: float | None = Field(description="mean completeness of the window's rows (0–1)")
    complete_before: datetime | None = Field(
        description="slots ending after this (the newest reading received) are left out, UTC"
    )


class KpiOut(_Out):
    """A stored indicator of the newest period of its grain, against its target."""

    org_id: str | None = Field(description="null: the site")
    indicator: str
    grain: str = Field(description="day | month | year")
    period_start: datetime
    period_end: datetime
    value: float | None = Field(description="in `unit`; null when undefined")
    unit: str
    basis: str
    target_threshold: float | None = Field(description="in `target_unit`")
    target_comparator: str | None = Field(description="le | ge | …: how value meets the target")
    target_unit: str | None
    status: str = Field(
        description="on_track | at_risk | off_track | insufficient_data | no_target"
    )
    explanation: str
    completeness: float = Field(description="fraction (0–1): the period's data coverage")
    days_with_data: int | None = Field(
        default=None, description="site-local days (d) with data in the period"
    )
    reason_en: str | None = Field(default=None, description="why insufficient_data")
    reason_zh: str | None = Field(default=None, description="数据不足的原因")


class ViewSummaryOut(_Out):
    site_id: str
    org_id: str | None = Field(description="an enterprise key: its organisation's rows only")
    as_of: datetime
    recent: RecentCarbonOut
    kpis: list[KpiOut]
