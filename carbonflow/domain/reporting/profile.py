"""Destination profiles and the HJ 212 uploads built from stored period values. Pure.

A destination is one authority endpoint (docs/push.md "Destinations"): protocol and version,
address, our identity there (ST, MN, PW: the secrets come from environment variables named in
the profile), which stored quantities go out under which codes and units, which data commands
(2051 15-minute, 2061 hourly, 2031 daily) and the answer timeout and retries.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from carbonflow.domain.calendar import day_bounds, month_bounds, zone_of
from carbonflow.domain.readings.quality import Quality
from carbonflow.domain.reporting.energy import (
    EnergyBatch,
    EnergyDestination,
    EnergyProfile,
    EnergyValue,
    ItemMap,
    day_batch,
    month_batch,
    quarter_batch,
)
from carbonflow.domain.reporting.energy import Grain as EnergyGrain
from carbonflow.domain.reporting.hj212 import WIRE_ZONE, Cp, Version
from carbonflow.domain.reporting.hj212_flow import (
    CodeValues,
    DataFlag,
    Identity,
    data_cp,
    quality_flag,
    wire_number,
)
from carbonflow.domain.units import Dimension, UnitError, convert, lookup

CN_GRAINS: Mapping[str, str] = {"2051": "15min", "2061": "hour", "2031": "day"}
"""Data commands we push and the result grain each carries (DataTime = period start)."""
DEFAULT_OVERTIME_S = 10.0
"""Answer timeout of HJ 212-2017 Table 1 for mobile networks [s]."""
DEFAULT_RECOUNT = 3
"""Resends before the link counts as unusable (Table 1)."""
SOURCES = ("co2_t", "ch4_t", "tco2e", "energy_tce", "scope1_tco2e", "scope2_tco2e")
"""Stored quantities a code can carry besides ``activity:<carrier>`` (location basis)."""


class ProfileError(ValueError):
    """A destination profile that cannot be used; the message names the field."""


@dataclass(frozen=True)
class CodeMap:
    """One HJ 212 code: which stored quantity (``co2_t``, ``activity:electricity`` …) in which
    unit (a symbol of the unit table) with how many decimals."""

    source: str
    code: str
    unit: str
    places: int = 1


@dataclass(frozen=True)
class Destination:
    name: str
    site_id: str
    host: str
    port: int
    identity: Identity
    codes: tuple[CodeMap, ...]
    cns: tuple[str, ...] = ("2061", "2031")
    overtime_s: float = DEFAULT_OVERTIME_S
    recount: int = DEFAULT_RECOUNT
    sm4_key: bytes | None = None
    start: datetime | None = None
    heartbeat_s: float | None = None
    tz: str = WIRE_ZONE

    @property
    def version(self) -> Version:
        return self.identity.version


@dataclass(frozen=True)
class PeriodValue:
    """A stored quantity of one period: value in ``unit``, with its quality."""

    source: str
    value: float
    unit: str
    quality: str


def _text(raw: Mapping[str, object], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str | int) or isinstance(value, bool) or str(value) == "":
        raise ProfileError(f"{where}: {key} is required (text)")
    return str(value)


def _secret(raw: Mapping[str, object], key: str, env: Mapping[str, str], where: str) -> str:
    name = _text(raw, key, where)
    value = env.get(name, "")
    if not value:
        raise ProfileError(f"{where}: environment variable {name} ({key}) is not set")
    return value


def _codes(raw: object, where: str, key: str = "codes") -> tuple[CodeMap, ...]:
    if not isinstance(raw, list) or not raw:
        raise ProfileError(f"{where}: {key} must be a non-empty list")
    codes = []
    for i, item in enumerate(raw):
        at = f"{where}.{key}[{i}]"
        if not isinstance(item, dict):
            raise ProfileError(f"{at}: a mapping with source, code, unit")
        source = _text(item, "source", at)
        if source not in SOURCES and not source.startswith("activity:"):
            raise ProfileError(f"{at}: source {source!r} is not one of {SOURCES} or activity:…")
        try:
            unit = lookup(_text(item, "unit", at))
        except UnitError as error:
            raise ProfileError(f"{at}: {error}") from None
        if source in SOURCES and unit.dimension is not Dimension.MASS:
            raise ProfileError(f"{at}: {source} is a mass (t): unit {unit.symbol} cannot take it")
        places = item.get("places", 1)
        if not isinstance(places, int) or not 0 <= places <= 6:
            raise ProfileError(f"{at}: places must be 0…6")
        codes.append(CodeMap(source, _text(item, "code", at), unit.symbol, places))
    return tuple(codes)


def _version(raw: Mapping[str, object], where: str) -> Version:
    version = str(raw.get("version", "2017"))
    if version not in {"2017", "2025"}:
        raise ProfileError(f"{where}: version must be 2017 or 2025")
    return Version.HJ212_2017 if version == "2017" else Version.HJ212_2025


def _sm4_key(raw: Mapping[str, object], env: Mapping[str, str], where: str) -> bytes | None:
    if "sm4_key_env" not in raw:
        return None
    try:
        key = bytes.fromhex(_secret(raw, "sm4_key_env", env, where))
    except ValueError:
        key = b""
    if len(key) != 16:
        raise ProfileError(f"{where}: the SM4 key must be 32 hex digits")
    return key


def _number(raw: Mapping[str, object], key: str, default: float, where: str) -> float:
    value = raw.get(key, default)
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value <= 99:
        raise ProfileError(f"{where}: {key} must be a number in (0, 99] (HJ 212 Table 4)")
    return float(value)


_ST = re.compile(r"[0-9A-Z]{2}")
_HEADER_VALUE = re.compile(r"[!-~]{1,32}")  # printable ASCII
_FORBIDDEN = frozenset(";,&=")


def _check_identity(identity: Identity, where: str) -> None:
    """ST, MN and PW as a packet header can carry them (HJ 212 Table 3; the 6-character PW
    limit of 2017 is not enforced: platforms differ)."""
    if not _ST.fullmatch(identity.st):
        raise ProfileError(f"{where}: st must be 2 characters 0-9/A-Z")
    for name, value in (("MN", identity.mn), ("PW", identity.pw)):
        if not _HEADER_VALUE.fullmatch(value) or _FORBIDDEN & set(value):
            raise ProfileError(f"{where}: {name} must be 1-32 printable ASCII characters, no ;,&=")


MAX_HEARTBEAT_S = 3600.0


def _heartbeat(raw: Mapping[str, object], version: Version, where: str) -> float | None:
    """The 9015 heartbeat interval [s]: HJ 212-2025 only (reported; interval to be agreed)."""
    value = raw.get("heartbeat_s")
    if value is None:
        return None
    if version < Version.HJ212_2025:
        raise ProfileError(f"{where}: heartbeat_s needs version 2025 (9015 is a 2025 command)")
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ProfileError(f"{where}: heartbeat_s must be a number of seconds")
    if not 0 < value <= MAX_HEARTBEAT_S:
        raise ProfileError(f"{where}: heartbeat_s must be in (0, {MAX_HEARTBEAT_S:g}]")
    return float(value)


def _start(raw: object, where: str) -> datetime | None:
    if raw is None:
        return None
    try:
        start = raw if isinstance(raw, datetime) else datetime.fromisoformat(str(raw))
    except ValueError:
        start = None
    if start is None or start.tzinfo is None:
        raise ProfileError(f"{where}: start must be a date-time with offset")
    return start


PROTOCOLS = ("hj212", "energy")


def destination_from_mapping(raw: Mapping[str, object], env: Mapping[str, str]) -> Destination:
    """An HJ 212 destination from its profile (a parsed YAML mapping) and the environment
    holding its secrets."""
    where = f"destination {raw.get('name', '?')}"
    if raw.get("protocol", "hj212") != "hj212":
        raise ProfileError(f"{where}: protocol must be hj212 here")
    version = _version(raw, where)
    cns = raw.get("cns", ["2061", "2031"])
    if not isinstance(cns, list) or not cns or not set(map(str, cns)) <= set(CN_GRAINS):
        raise ProfileError(f"{where}: cns must be a list of {sorted(CN_GRAINS)}")
    port = raw.get("port")
    if not isinstance(port, int) or not 0 < port < 65536:
        raise ProfileError(f"{where}: port must be 1…65535")
    start = _start(raw.get("start"), where)
    identity = Identity(
        st=_text(raw, "st", where),
        pw=_secret(raw, "pw_env", env, where),
        mn=_secret(raw, "mn_env", env, where),
        version=version,
    )
    _check_identity(identity, where)
    return Destination(
        name=_text(raw, "name", where),
        site_id=_text(raw, "site", where),
        host=_text(raw, "host", where),
        port=port,
        identity=identity,
        codes=_codes(raw.get("codes"), where),
        cns=tuple(str(cn) for cn in cns),
        overtime_s=_number(raw, "overtime_s", DEFAULT_OVERTIME_S, where),
        recount=int(_number(raw, "recount", DEFAULT_RECOUNT, where)),
        sm4_key=_sm4_key(raw, env, where),
        start=start,
        heartbeat_s=_heartbeat(raw, version, where),
    )


_URL = re.compile(r"https?://[^\s/?#]+(?:/[^\s]*)?")


def energy_destination_from_mapping(
    raw: Mapping[str, object], env: Mapping[str, str]
) -> EnergyDestination:
    """An energy online monitoring destination (``protocol: energy``): the province's HTTPS
    URL, the bearer token (from the environment), the unit's registered code, the item map
    (sources as for HJ 212 codes) and the grains sent."""
    where = f"destination {raw.get('name', '?')}"
    url = _text(raw, "url", where)
    if not _URL.fullmatch(url):
        raise ProfileError(f"{where}: url must be an http(s) URL")
    if url.startswith("http://") and raw.get("allow_http") is not True:
        raise ProfileError(f"{where}: url must be https (allow_http: true only for a local test)")
    grains = raw.get("grains", ["15min", "day", "month"])
    known = {str(g) for g in EnergyGrain}
    if not isinstance(grains, list) or not grains or not {str(g) for g in grains} <= known:
        raise ProfileError(f"{where}: grains must be a list of {sorted(known)}")
    items = tuple(
        ItemMap(c.source, c.code, c.unit, c.places)
        for c in _codes(raw.get("items"), where, "items")
    )
    ca_file = raw.get("ca_file")
    if ca_file is not None and not isinstance(ca_file, str):
        raise ProfileError(f"{where}: ca_file must be a path")
    tz = str(raw.get("tz", "Asia/Shanghai"))
    try:
        zone_of(tz)
    except (ValueError, KeyError):
        raise ProfileError(f"{where}: tz {tz!r} is not a time zone") from None
    return EnergyDestination(
        name=_text(raw, "name", where),
        site_id=_text(raw, "site", where),
        url=url,
        token=_secret(raw, "token_env", env, where),
        profile=EnergyProfile(_text(raw, "unit_code", where), items, tz),
        grains=tuple(EnergyGrain(str(g)) for g in grains),
        start=_start(raw.get("start"), where),
        timeout_s=_number(raw, "timeout_s", DEFAULT_OVERTIME_S, where),
        ca_file=ca_file,
    )


def _entries(doc: object) -> list[Mapping[str, object]]:
    """The destination mappings of a profile document; names unique over both protocols."""
    if not isinstance(doc, dict) or not isinstance(doc.get("destinations"), list):
        raise ProfileError("the profile file needs a list under 'destinations'")
    entries: list[Mapping[str, object]] = []
    for i, raw in enumerate(doc["destinations"]):
        if not isinstance(raw, dict):
            raise ProfileError(f"destinations[{i}]: a mapping")
        if raw.get("protocol", "hj212") not in PROTOCOLS:
            raise ProfileError(f"destinations[{i}]: protocol must be one of {PROTOCOLS}")
        entries.append(raw)
    names = [str(raw.get("name")) for raw in entries]
    if len(set(names)) != len(names):
        raise ProfileError("destination names must be unique")
    return entries


def destinations_from_document(doc: object, env: Mapping[str, str]) -> list[Destination]:
    """Every HJ 212 destination of a profile document ``{destinations: [...]}``."""
    return [
        destination_from_mapping(raw, env)
        for raw in _entries(doc)
        if raw.get("protocol", "hj212") == "hj212"
    ]


def energy_destinations_from_document(
    doc: object, env: Mapping[str, str]
) -> list[EnergyDestination]:
    """Every energy online monitoring destination of a profile document."""
    return [
        energy_destination_from_mapping(raw, env)
        for raw in _entries(doc)
        if raw.get("protocol") == "energy"
    ]


def code_values(codes: Sequence[CodeMap], values: Sequence[PeriodValue]) -> list[CodeValues]:
    """Each code's ``-Cou`` (amount over the period) in its unit and width, flagged from our
    quality; a quantity with no stored value is sent as flag B alone (no value)."""
    by_source = {v.source: v for v in values}
    out = []
    for code in codes:
        value = by_source.get(code.source)
        if value is None or value.quality == Quality.MISSING:
            out.append(CodeValues(code.code, DataFlag.COMMUNICATION))
            continue
        amount = convert(value.value, value.unit, lookup(code.unit))
        out.append(
            CodeValues(
                code.code,
                quality_flag(value.quality),
                cou=wire_number(Decimal(repr(amount)), code.places),
            )
        )
    return out


def upload_cp(destination: Destination, start: datetime, values: Sequence[PeriodValue]) -> Cp:
    """The CP area of the upload of the period starting at ``start``."""
    return data_cp(start, code_values(destination.codes, values), destination.tz)


def values_digest(cp: Cp) -> str:
    """A fingerprint of what an upload says (its CP area: DataTime, codes, values, flags) —
    not of its QN or framing, so two builds of the same period compare equal when the values
    are the same."""
    text = ";".join(",".join(f"{k}={v}" for k, v in item) for item in cp)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


_STEPS = {"15min": timedelta(minutes=15), "hour": timedelta(hours=1)}
_CALENDAR = {"day": day_bounds, "month": month_bounds}


def period_start_of(grain: str, instant: datetime, tz: str) -> datetime:
    """The start (UTC) of the ``grain`` period (15min, hour, day, month; local calendar) holding
    ``instant``."""
    if grain in _CALENDAR:
        return _CALENDAR[grain](instant.astimezone(zone_of(tz)).date(), tz)[0]
    step = _STEPS[grain]
    local = instant.astimezone(zone_of(tz))
    offset = local.utcoffset() or timedelta(0)
    # Hours and quarters are counted on the local clock (a +05:45 zone has its own quarters).
    since_epoch = local.replace(tzinfo=None) - datetime(1970, 1, 1)
    floored = datetime(1970, 1, 1) + since_epoch // step * step
    return (floored - offset).replace(tzinfo=instant.tzinfo).astimezone(instant.tzinfo)


def period_end(grain: str, start: datetime, tz: str) -> datetime:
    """The end of the ``grain`` period starting at ``start`` (a local day may last 23 or 25 h,
    a month 28 to 31 days)."""
    if grain in _CALENDAR:
        return _CALENDAR[grain](start.astimezone(zone_of(tz)).date(), tz)[1]
    return start + _STEPS[grain]


def due_periods(
    grain: str, start: datetime, through: datetime, tz: str, limit: int
) -> list[tuple[datetime, datetime]]:
    """The periods from ``start`` that end at or before ``through`` (results exist for all of
    them), at most ``limit``."""
    periods: list[tuple[datetime, datetime]] = []
    cursor = start
    while len(periods) < limit:
        end = period_end(grain, cursor, tz)
        if end > through:
            break
        periods.append((cursor, end))
        cursor = end
    return periods


FINER: Mapping[EnergyGrain, str | None] = {
    EnergyGrain.QUARTER_HOUR: None,
    EnergyGrain.DAY: "15min",
    EnergyGrain.MONTH: "day",
}
"""The grain a batch's checks read besides its own: a day's 15-min values (completeness), a
month's days (consistency)."""


def _energy_values(start: datetime, values: Sequence[PeriodValue]) -> list[EnergyValue]:
    return [EnergyValue(v.source, start, v.value, v.unit, v.quality) for v in values]


def energy_batch(
    destination: EnergyDestination,
    grain: EnergyGrain,
    start: datetime,
    own: Sequence[PeriodValue],
    finer: Mapping[datetime, Sequence[PeriodValue]],
) -> EnergyBatch:
    """The batch of the ``grain`` period starting at ``start`` from its stored values ``own``
    and, for the checks, the stored values of the :data:`FINER` grain inside it."""
    parts = [v for t, values in sorted(finer.items()) for v in _energy_values(t, values)]
    values = _energy_values(start, own)
    if grain is EnergyGrain.DAY:
        return day_batch(destination.profile, start, values, parts)
    if grain is EnergyGrain.MONTH:
        return month_batch(destination.profile, start, values, parts)
    return quarter_batch(destination.profile, start, values)
