"""Indicator and status names as a person reads them, in Chinese and English.

The ledger's PDF prints them (``carbonflow.domain.ledger.labels.VALUES``) and the live view
shows the same words (``services/api/static/labels.js``; a test keeps the two equal). JSON, CSV
and XLSX keep the ids: they are what a program filters on.
"""

from __future__ import annotations

from collections.abc import Mapping

from carbonflow.domain.indicators.formulas import Indicator, Status

#: (zh, en) of every indicator id.
INDICATOR_NAMES: Mapping[Indicator, tuple[str, str]] = {
    Indicator.CO2_PER_RAW_COAL: ("吨原煤碳排放（CO2e）", "CO2e per tonne of raw coal"),
    Indicator.CO2_PER_RAW_COAL_REDUCTION: (
        "吨原煤碳排放降低率（CO2e）", "CO2e per tonne of raw coal, reduction",
    ),
    Indicator.ELECTRICITY_PER_RAW_COAL: ("吨原煤电耗", "electricity per tonne of raw coal"),
    Indicator.ENERGY_PER_RAW_COAL: ("吨原煤综合能耗", "energy per tonne of raw coal"),
    Indicator.ENERGY_PER_RAW_COAL_REDUCTION: (
        "吨原煤能耗降低率", "energy per tonne of raw coal, reduction",
    ),
    Indicator.ZERO_CARBON_ENERGY_SHARE: ("零碳能源占比", "zero-carbon energy share"),
    Indicator.METHANE_UTILISATION_RATE: ("瓦斯利用率", "methane utilisation rate"),
    Indicator.METHANE_DRAINAGE_RATE: ("瓦斯抽采率", "methane drainage rate"),
    Indicator.CO2_PER_ENERGY: ("单位能耗碳排放", "CO2 per unit of energy"),
    Indicator.CLEAN_ENERGY_SHARE: ("清洁能源消费占比", "clean energy share"),
    Indicator.TOTAL_CO2_REDUCTION: ("碳排放总量降低率", "total CO2 reduction"),
    Indicator.LOW_CARBON_VEHICLE_SHARE: ("低碳车辆占比", "low-carbon vehicle share"),
    Indicator.UNIT_PRODUCT_CO2_REDUCTION: (
        "单位产品碳排放降低率", "CO2 per unit of product, reduction",
    ),
    Indicator.SUPPLY_COAL_CONSUMPTION: ("供电煤耗", "coal per kWh supplied"),
}  # fmt: skip

#: (zh, en) of every indicator status.
STATUS_NAMES: Mapping[Status, tuple[str, str]] = {
    Status.ON_TRACK: ("达标", "on track"),
    Status.AT_RISK: ("预警", "at risk"),
    Status.OFF_TRACK: ("未达标", "off track"),
    Status.INSUFFICIENT_DATA: ("数据不足", "insufficient data"),
    Status.NO_TARGET: ("无目标", "no target"),
}
