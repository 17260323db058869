"""The ledger's words in Chinese and English: section, column and field labels for exports. Pure.

The document itself keeps its keys (``tco2e``, ``scope_2_tco2e``): they are what the JSON, the
hash and the API schema use. A person reads the CSV, XLSX and PDF, so those carry these labels,
with the unit in the header cell (``排放量 [tCO2e]``). Terms follow the national accounting
guidelines' usage (范围一/范围二, 基于位置/基于市场, 折标准煤).
"""

from __future__ import annotations

from typing import Literal

from carbonflow.domain.indicators.names import INDICATOR_NAMES, STATUS_NAMES

Lang = Literal["zh", "en"]
LANGS: tuple[Lang, ...] = ("zh", "en")

SECTIONS: dict[str, tuple[str, str]] = {
    "header": ("表头信息", "Header"),
    "activity": ("活动数据", "Activity data"),
    "devices": ("计量器具", "Meters"),
    "factors": ("排放因子", "Emission factors"),
    "emissions": ("排放量明细", "Emissions"),
    "totals": ("排放合计", "Totals"),
    "energy_totals": ("综合能源消费量", "Energy totals"),
    "green_power": ("绿色电力", "Green power"),
    "green_claims": ("绿证核销", "Green-instrument claims"),
    "production": ("产品产量", "Production"),
    "indicators": ("指标", "Indicators"),
    "quality": ("数据质量", "Data quality"),
    "changes": ("修订变更", "Changes"),
}

# Column and field keys of every section (one key means the same wherever it appears).
FIELDS: dict[str, tuple[str, str]] = {
    # header
    "site_id": ("园区/矿山", "Site"),
    "site_name": ("园区/矿山名称", "Site name"),
    "site_name_zh": ("园区/矿山中文名称", "Site name (Chinese)"),
    "org_id": ("企业", "Organisation"),
    "legal_name": ("单位名称", "Registered name"),
    "credit_code": ("统一社会信用代码", "Unified social credit code"),
    "industry": ("所属行业", "Industry"),
    "period_local_start": ("核算期起 (当地时间)", "Period start (local time)"),
    "period_local_end": ("核算期止 (当地时间)", "Period end (local time)"),
    "preparer": ("编制人", "Prepared by"),
    "content_sha256": ("内容哈希 (SHA-256)", "Content hash (SHA-256)"),
    "month": ("核算月份", "Month"),
    "timezone": ("时区", "Time zone"),
    "period_start": ("核算期起 (UTC)", "Period start (UTC)"),
    "period_end": ("核算期止 (UTC)", "Period end (UTC)"),
    "generated_at": ("生成时间", "Generated at"),
    "calc_results_through": ("计算结果截至", "Calculated through"),
    "calc_last_received_at": ("最新数据接收时间", "Newest data received"),
    "status": ("状态", "Status"),
    "revision": ("修订版本", "Revision"),
    "closed_by": ("关账人", "Closed by"),
    "reason": ("原因", "Reason"),
    "rounding": ("数值修约", "Rounding"),
    # activity, emissions, totals
    "category": ("排放类别", "Category"),
    "carrier": ("能源品种", "Energy carrier"),
    "scope": ("范围", "Scope"),
    "quantity": ("活动量", "Quantity"),
    "unit": ("单位", "Unit"),
    "energy_tce": ("综合能耗", "Energy"),
    "completeness_share": ("数据完整率", "Completeness"),
    "quality": ("数据质量", "Quality"),
    "gas": ("温室气体", "Gas"),
    "basis": ("核算口径", "Basis"),
    "gas_t": ("气体排放量", "Gas mass"),
    "tco2e": ("排放量 (CO2当量)", "Emissions (CO2e)"),
    "gwp_key": ("GWP 取值", "GWP set"),
    "gwp": ("全球增温潜势", "GWP"),
    "view": ("口径", "View"),
    "scope_1_tco2e": ("范围一排放", "Scope 1"),
    "scope_2_tco2e": ("范围二排放", "Scope 2"),
    "total_tco2e": ("排放总量", "Total"),
    "co2_t": ("二氧化碳", "CO2"),
    "ch4_t": ("甲烷", "CH4"),
    "n2o_t": ("氧化亚氮", "N2O"),
    # factors
    "factor_key": ("因子", "Factor"),
    "value": ("数值", "Value"),
    "version": ("版本", "Version"),
    "file": ("因子库文件", "Factor file"),
    "source": ("来源", "Source"),
    "confidence": ("可信度", "Confidence"),
    "data_year": ("数据年份", "Data year"),
    "selection": ("选用方式", "Selection"),
    "selection_reason": ("选用理由", "Selection reason"),
    "requested_year": ("核算年份", "Accounting year"),
    "factor_year_fallback": ("沿用往年因子", "Earlier year's factor"),
    "tce_factor_key": ("折标系数", "tce coefficient"),
    "tce_factor": ("折标系数值", "tce coefficient value"),
    "tce_factor_unit": ("折标系数单位", "tce coefficient unit"),
    "read_in": ("查阅出处", "Read in"),
    "factor_value": ("排放因子值", "Emission factor"),
    "factor_unit": ("排放因子单位", "Emission factor unit"),
    "factor_data_year": ("因子数据年份", "Factor data year"),
    "factor_version": ("因子版本", "Factor version"),
    "factor_source": ("因子来源", "Factor source"),
    # activity: devices, quality, emissions per line
    "devices": ("计量器具", "Devices"),
    "measured_share": ("实测占比", "Measured share"),
    "estimated_share": ("估算占比", "Estimated share"),
    "missing_share": ("缺失占比", "Missing share"),
    "scope_1_tco2e_location": ("范围一排放 (基于位置)", "Scope 1 (location)"),
    "scope_2_tco2e_location": ("范围二排放 (基于位置)", "Scope 2 (location)"),
    "scope_1_tco2e_market": ("范围一排放 (基于市场)", "Scope 1 (market)"),
    "scope_2_tco2e_market": ("范围二排放 (基于市场)", "Scope 2 (market)"),
    "co2_t_location": ("二氧化碳 (基于位置)", "CO2 (location)"),
    "ch4_t_location": ("甲烷 (基于位置)", "CH4 (location)"),
    "n2o_t_location": ("氧化亚氮 (基于位置)", "N2O (location)"),
    "co2_t_market": ("二氧化碳 (基于市场)", "CO2 (market)"),
    "ch4_t_market": ("甲烷 (基于市场)", "CH4 (market)"),
    "n2o_t_market": ("氧化亚氮 (基于市场)", "N2O (market)"),
    # devices
    "device_id": ("器具编号", "Device"),
    "role": ("计量用途", "Role"),
    "booking": ("归属", "Booking"),
    "serials": ("表计序列号", "Meter serials"),
    "metric": ("计量项", "Metric"),
    "meter_kind": ("计量方式", "Meter kind"),
    "opening_reading": ("期初读数", "Opening reading"),
    "opening_at": ("期初读数时间", "Opening reading at"),
    "closing_reading": ("期末读数", "Closing reading"),
    "closing_at": ("期末读数时间", "Closing reading at"),
    "register_unit": ("读数单位", "Register unit"),
    "multiplier": ("倍率", "Multiplier"),
    "device_quantity": ("计量值 (含倍率)", "Quantity (multiplier applied)"),
    "readings": ("读数条数", "Readings"),
    # green power
    "instrument_id": ("凭证编号", "Instrument"),
    "kind": ("类型", "Kind"),
    "accepted": ("是否采信", "Accepted"),
    "offered_mwh": ("申报电量", "Offered"),
    "applied_mwh": ("核减电量", "Applied"),
    "unused_mwh": ("未使用电量", "Unused"),
    # energy totals
    "total": ("合计口径", "Total"),
    "label_zh": ("名称 (中文)", "Name (Chinese)"),
    "label_en": ("名称 (英文)", "Name (English)"),
    "utilised_methane_tce": ("其中煤矿瓦斯利用量", "Of which utilised coal-mine methane"),
    "indicators": ("采用此口径的指标", "Indicators built on it"),
    # green-instrument claims
    "claim_ref": ("核销凭证", "Claim entry"),
    "claim_id": ("核销编号", "Claim id"),
    "batch_id": ("绿证批次", "Batch"),
    "evidence_kind": ("凭证类型", "Evidence type"),
    "serial_first": ("起始编号", "First serial"),
    "serial_last": ("终止编号", "Last serial"),
    "mwh": ("核销电量", "Claimed"),
    "production_month": ("生产月份", "Production month"),
    "green_claims": ("引用的绿证核销", "Green-instrument claims used"),
    # production
    "product_id": ("产品", "Product"),
    "output": ("产量", "Output"),
    "intensity_location_tco2e": ("单位产品排放 (基于位置)", "Intensity (location-based)"),
    "intensity_unit": ("强度单位", "Intensity unit"),
    # indicators
    "indicator": ("指标", "Indicator"),
    "target_threshold": ("目标值", "Target"),
    "target_comparator": ("目标比较", "Target comparator"),
    "target_unit": ("目标单位", "Target unit"),
    "days_with_data": ("有数据天数", "Days with data"),
    "status_reason_zh": ("状态说明 (中文)", "Status reason (Chinese)"),
    "status_reason_en": ("状态说明 (英文)", "Status reason (English)"),
    # quality
    "lines": ("核算行数", "Lines"),
    "lines_measured": ("实测行数", "Measured lines"),
    "lines_estimated": ("估算行数", "Estimated lines"),
    "lines_missing": ("缺失行数", "Missing lines"),
    "surplus_export_mwh": ("富余上网电量 [MWh]", "Surplus export [MWh]"),
    "surplus_heat_export_gj": ("富余外供热量 [GJ]", "Surplus heat export [GJ]"),
    "attributed_energy_tce": ("分摊综合能耗 [tce]", "Attributed energy [tce]"),
    "attributed_tco2e_location": ("分摊排放 (基于位置) [tCO2e]", "Attributed (location) [tCO2e]"),
    "attributed_tco2e_market": ("分摊排放 (基于市场) [tCO2e]", "Attributed (market) [tCO2e]"),
    # changes
    "line": ("行", "Line"),
    "before": ("修订前", "Before"),
    "after": ("修订后", "After"),
    "delta": ("变化", "Change"),
    # PDF: the line number that ties a table row to its detail block, a line's CO2e per view
    "no": ("序号", "No."),
    "tco2e_location": ("排放量 (基于位置)", "Emissions (location)"),
    "tco2e_market": ("排放量 (基于市场)", "Emissions (market)"),
    # CSV layout
    "section": ("部分", "Section"),
    "field": ("项目", "Field"),
}


# Values a person reads in words (PDF): the members of the accounting enums and statuses. The
# JSON, CSV and XLSX keep the keys (they are what a program filters on).
VALUES: dict[str, tuple[str, str]] = {
    "scope_1": ("范围一", "Scope 1"),
    "scope_2": ("范围二", "Scope 2"),
    "location": ("基于位置", "location-based"),
    "market": ("基于市场", "market-based"),
    "energy": ("能耗", "energy"),
    "both": ("通用", "both"),
    "measured": ("实测", "measured"),
    "estimated": ("估算", "estimated"),
    "missing": ("缺失", "missing"),
    "closed": ("已关账", "closed"),
    "draft": ("草稿", "draft"),
    "fuel_combustion": ("化石燃料燃烧", "fuel combustion"),
    "process": ("工业生产过程", "process"),
    "fugitive": ("逸散排放", "fugitive"),
    "flaring": ("火炬燃烧", "flaring"),
    "self_generation": ("自发电", "self-generation"),
    "purchased_electricity": ("外购电力", "purchased electricity"),
    "green_electricity": ("绿色电力", "green electricity"),
    "purchased_heat": ("外购热力", "purchased heat"),
    "electricity": ("电力", "electricity"),
    "heat": ("热力", "heat"),
    "natural_gas": ("天然气", "natural gas"),
    "lng": ("液化天然气", "LNG"),
    "diesel": ("柴油", "diesel"),
    "gasoline": ("汽油", "gasoline"),
    "coal": ("原煤", "coal"),
    "methane": ("甲烷", "methane"),
    # industries of the example sites' organisations (site files: free text; others as written)
    "coal_mining": ("煤炭开采和洗选业", "coal mining and washing"),
    "battery_materials": ("电池材料制造", "battery materials manufacturing"),
    "data_centre": ("数据中心", "data centre"),
    "logistics": ("仓储物流", "warehousing and logistics"),
    "energy_services": ("综合能源服务", "integrated energy services"),
    **{str(k): v for k, v in INDICATOR_NAMES.items()},
    **{str(k): v for k, v in STATUS_NAMES.items()},
}
# The columns whose values are read in words (VALUES); any other value prints as stored.
WORDED = frozenset(
    {"scope", "view", "basis", "quality", "status", "category", "carrier", "industry", "indicator"}
)

YES_NO = {True: ("是", "yes"), False: ("否", "no")}


def value_label(key: str, value: object, lang: Lang) -> object:
    """``value`` of column ``key`` in words where :data:`VALUES` has it (a yes/no in any
    column), else unchanged."""
    if isinstance(value, bool):
        return YES_NO[value][LANGS.index(lang)]
    if key not in WORDED or not isinstance(value, str) or value not in VALUES:
        return value
    return VALUES[value][LANGS.index(lang)]


def section_label(section: str, lang: Lang) -> str:
    pair = SECTIONS.get(section)
    return section if pair is None else pair[LANGS.index(lang)]


def field_label(key: str, lang: Lang, unit: str | None = None) -> str:
    """The label of a column or field, with its unit in brackets; an unknown key as itself."""
    pair = FIELDS.get(key)
    text = key if pair is None else pair[LANGS.index(lang)]
    return f"{text} [{unit}]" if unit else text
