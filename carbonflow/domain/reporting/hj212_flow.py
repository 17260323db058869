"""HJ 212-2017 data and interaction: field names, data flags, data packets, split packets and
their reassembly, and the answers (9011/9012/9013/9014). Pure.

Field names (Table 4) are ``<code>-<suffix>``: ``a05001-Avg`` is the period mean of CO2.
A data packet's CP area starts with the item ``DataTime=…`` (the period start for 2031, 2051,
2061; the sampling instant for 2011; §1.8 of REPORTING.md) followed by one item per code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from enum import IntEnum, StrEnum

from carbonflow.domain.calendar import Zone
from carbonflow.domain.reporting.hj212 import (
    MAX_CP_CHARS,
    MAX_SEGMENT_CHARS,
    WIRE_ZONE,
    Cp,
    ErrorReason,
    Hj212Error,
    Packet,
    Version,
    cp_to_text,
    flag_value,
    parse_wire_time,
    wire_time,
)

SYSTEM_INTERACTION = "91"
"""ST of every 9011–9014 answer (§6.6.1)."""


class Suffix(StrEnum):
    """Field suffixes of a pollutant code (Table 4)."""

    RTD = "Rtd"
    MIN = "Min"
    AVG = "Avg"
    MAX = "Max"
    COU = "Cou"
    FLAG = "Flag"
    EFLAG = "EFlag"
    SAMPLE_TIME = "SampleTime"
    ZS_RTD = "ZsRtd"
    ZS_MIN = "ZsMin"
    ZS_AVG = "ZsAvg"
    ZS_MAX = "ZsMax"


def field_name(code: str, suffix: Suffix) -> str:
    """``a05001`` + ``Avg`` → ``a05001-Avg``."""
    return f"{code}-{suffix}"


def split_field_name(name: str) -> tuple[str, Suffix]:
    """``a05001-Avg`` → (``a05001``, AVG); an unknown suffix is a malformed segment."""
    code, sep, suffix = name.rpartition("-")
    if not sep or not code or suffix not in {s.value for s in Suffix}:
        raise Hj212Error(ErrorReason.MALFORMED_SEGMENT, f"field {name!r}")
    return code, Suffix(suffix)


class DataFlag(StrEnum):
    """Data flags (Table 8)."""

    NORMAL = "N"
    STOPPED = "F"
    MAINTENANCE = "M"
    MANUAL = "S"
    FAULT = "D"
    CALIBRATION = "C"
    OVER_RANGE = "T"
    COMMUNICATION = "B"


FLAG_TEXT = {
    DataFlag.NORMAL: ("instrument working normally", "在线监控仪器仪表工作正常"),
    DataFlag.STOPPED: ("instrument stopped", "在线监控仪器仪表停运"),
    DataFlag.MAINTENANCE: ("produced during maintenance", "在线监控仪器仪表处于维护期间产生的数据"),
    DataFlag.MANUAL: ("manually entered value", "手工输入的设定值"),
    DataFlag.FAULT: ("instrument fault", "在线监控仪器仪表故障"),
    DataFlag.CALIBRATION: ("instrument in calibration", "在线监控仪器仪表处于校准状态"),
    DataFlag.OVER_RANGE: (
        "above the measuring upper limit",
        "在线监控仪器仪表采样数值超过测量上限",
    ),
    DataFlag.COMMUNICATION: ("communication fault", "在线监控仪器仪表与数采仪通讯异常"),
}

FLUE_GAS_NORMAL_SHARE = Decimal("0.75")
"""Flue gas: a period is N when at least 75 % of its values are N, else D (App. C.16-C.18)."""


def flue_gas_flag(flags: Sequence[DataFlag]) -> DataFlag:
    """The flag of a flue-gas period from its values' flags (≥ 75 % N → N, else D)."""
    if not flags:
        return DataFlag.COMMUNICATION
    normal = sum(1 for flag in flags if flag is DataFlag.NORMAL)
    return DataFlag.NORMAL if normal >= FLUE_GAS_NORMAL_SHARE * len(flags) else DataFlag.FAULT


def effluent_flag(flags: Sequence[DataFlag]) -> DataFlag:
    """The flag of an effluent period: the first abnormal flag, N only if all values are N."""
    if not flags:
        return DataFlag.COMMUNICATION
    return next((flag for flag in flags if flag is not DataFlag.NORMAL), DataFlag.NORMAL)


def quality_flag(quality: str) -> DataFlag:
    """Our quality → data flag: measured N; estimated (bridged over a gap in readings) and
    missing B, the communication fault that causes them (docs/push.md: to be agreed per
    destination)."""
    return DataFlag.NORMAL if quality == "measured" else DataFlag.COMMUNICATION


def wire_number(value: Decimal, places: int) -> str:
    """A value with ``places`` decimals, rounded half-up, no exponent (``N14.2`` style)."""
    quantum = Decimal(1).scaleb(-places)
    return f"{value.quantize(quantum, rounding='ROUND_HALF_UP'):f}"


@dataclass(frozen=True)
class CodeValues:
    """The statistics of one code over one period, already in the destination's unit and
    rendered to its width; ``None`` statistics are left out."""

    code: str
    flag: DataFlag
    cou: str | None = None
    min: str | None = None
    avg: str | None = None
    max: str | None = None
    rtd: str | None = None

    def item(self) -> tuple[tuple[str, str], ...]:
        stats = (
            (Suffix.RTD, self.rtd),
            (Suffix.COU, self.cou),
            (Suffix.MIN, self.min),
            (Suffix.AVG, self.avg),
            (Suffix.MAX, self.max),
        )
        pairs = [(field_name(self.code, s), v) for s, v in stats if v is not None]
        return (*pairs, (field_name(self.code, Suffix.FLAG), str(self.flag)))


def data_cp(data_time: datetime, values: Iterable[CodeValues], tz: Zone = WIRE_ZONE) -> Cp:
    """The CP area of a data upload: ``DataTime`` then one item per code."""
    return ((("DataTime", wire_time(data_time, tz)),), *(v.item() for v in values))


@dataclass(frozen=True)
class Identity:
    """Who we are to one destination: system code, password, device id, protocol version, and
    how data CP areas are encoded on the wire (SM4 under 2025), which packet sizes must count."""

    st: str
    pw: str
    mn: str
    version: Version = Version.HJ212_2017
    encode_cp: Callable[[str], str] | None = field(default=None, compare=False, repr=False)


def data_packets(
    identity: Identity, cn: str, cp: Cp, qns: Sequence[str], *, answer: bool = True
) -> list[Packet]:
    """The packets of one data upload: one packet when the segment fits, else split packets
    (Flag bit D, PNUM/PNO) each repeating the first item (``DataTime``) and carrying as many
    code items as fit in 950 CP characters. Each packet takes its own QN from ``qns``, which
    must hold at least as many as there are packets (:func:`packet_count`)."""
    groups = _split_items(cp, identity, cn)
    if len(qns) < len(groups):
        raise ValueError(f"{len(groups)} packets need as many QNs, got {len(qns)}")
    split = len(groups) > 1
    flag = flag_value(identity.version, answer=answer, split=split)
    return [
        Packet(
            qn=qns[i],
            st=identity.st,
            cn=cn,
            pw=identity.pw,
            mn=identity.mn,
            flag=flag,
            pnum=len(groups) if split else None,
            pno=i + 1 if split else None,
            cp=group,
        )
        for i, group in enumerate(groups)
    ]


def packet_count(identity: Identity, cn: str, cp: Cp) -> int:
    """How many packets :func:`data_packets` makes of ``cp``."""
    return len(_split_items(cp, identity, cn))


def _fits(cp: Cp, identity: Identity, cn: str, split: bool) -> bool:
    probe = Packet(
        qn="0" * 17,
        st=identity.st,
        cn=cn,
        pw=identity.pw,
        mn=identity.mn,
        flag=255,
        pnum=9999 if split else None,
        pno=9999 if split else None,
        cp=cp,
    )
    encode = identity.encode_cp or (lambda text: text)
    cp_chars = len(encode(cp_to_text(cp))) + len("CP=&&&&")
    return cp_chars <= MAX_CP_CHARS and len(probe.segment(encode)) <= MAX_SEGMENT_CHARS


def _split_items(cp: Cp, identity: Identity, cn: str) -> list[Cp]:
    if _fits(cp, identity, cn, split=False):
        return [cp]
    head, items = cp[:1], cp[1:]
    groups: list[Cp] = []
    current: Cp = head
    for item in items:
        if len(current) > 1 and not _fits((*current, item), identity, cn, split=True):
            groups.append(current)
            current = head
        current = (*current, item)
        if not _fits(current, identity, cn, split=True):
            raise Hj212Error(ErrorReason.TOO_LONG, f"item {item[0][0]} alone exceeds a packet")
    groups.append(current)
    return groups


def reassemble(parts: Iterable[Packet]) -> Packet:
    """One packet from the split packets of one upload: same CN, MN and PNUM, every PNO from 1
    to PNUM exactly once; the first item (``DataTime``) is kept once. The result carries the
    first part's QN and no PNUM/PNO."""
    ordered = sorted(parts, key=lambda p: p.pno or 0)
    if not ordered:
        raise Hj212Error(ErrorReason.MALFORMED_SEGMENT, "no packets to reassemble")
    first = ordered[0]
    keys = {(p.cn, p.mn, p.pnum, p.cp[:1]) for p in ordered}
    if len(keys) != 1 or [p.pno for p in ordered] != list(range(1, (first.pnum or 0) + 1)):
        raise Hj212Error(
            ErrorReason.MALFORMED_SEGMENT, "split packets do not make one upload (CN/MN/PNUM/PNO)"
        )
    cp: Cp = (*first.cp[:1], *(item for p in ordered for item in p.cp[1:]))
    flag = None if first.flag is None else first.flag & ~0b10
    return replace(first, cp=cp, pnum=None, pno=None, flag=flag)


class QnRtn(IntEnum):
    """Request answer codes (Table 7)."""

    READY = 1
    REJECTED = 2
    PW_ERROR = 3
    MN_ERROR = 4
    ST_ERROR = 5
    FLAG_ERROR = 6
    QN_ERROR = 7
    CN_ERROR = 8
    CRC_ERROR = 9
    UNKNOWN = 100


class ExeRtn(IntEnum):
    """Execution result codes (Table 6)."""

    SUCCESS = 1
    FAILED = 2
    CONDITION_ERROR = 3
    TIMEOUT = 4
    BUSY = 5
    SYSTEM_FAULT = 6
    NO_DATA = 100


def _answer(to: Packet, cn: str, identity: Identity, cp: Cp) -> Packet:
    return Packet(
        qn=to.qn,
        st=SYSTEM_INTERACTION,
        cn=cn,
        pw=identity.pw,
        mn=identity.mn,
        flag=flag_value(identity.version, answer=False),
        cp=cp,
    )


def data_answer(to: Packet, identity: Identity) -> Packet:
    """9014 to a data packet that asked for an answer: its QN, empty CP (E2)."""
    return _answer(to, "9014", identity, ())


def notification_answer(to: Packet, identity: Identity) -> Packet:
    """9013 to a notification: its QN, empty CP."""
    return _answer(to, "9013", identity, ())


def request_answer(to: Packet, identity: Identity, code: QnRtn) -> Packet:
    """9011 to a request from the platform: its QN and ``QnRtn`` (E5)."""
    return _answer(to, "9011", identity, ((("QnRtn", str(int(code))),),))


def execution_result(to: Packet, identity: Identity, code: ExeRtn) -> Packet:
    """9012 closing a request: its QN and ``ExeRtn`` (E7)."""
    return _answer(to, "9012", identity, ((("ExeRtn", str(int(code))),),))


HISTORY_CNS = frozenset({"2031", "2041", "2051", "2061"})
"""Data commands the platform may request for BeginTime–EndTime (§6.5, C.14-C.22)."""


@dataclass(frozen=True)
class HistoryRequest:
    """A platform's request for stored data of ``cn`` with DataTime in [begin, end] (UTC)."""

    qn: str
    cn: str
    begin: datetime
    end: datetime


def history_request(packet: Packet, tz: Zone = WIRE_ZONE) -> HistoryRequest | None:
    """The history request a packet makes, or None if it makes none."""
    begin, end = packet.value("BeginTime"), packet.value("EndTime")
    if packet.cn not in HISTORY_CNS or begin is None or end is None or packet.qn is None:
        return None
    return HistoryRequest(
        qn=packet.qn, cn=packet.cn, begin=parse_wire_time(begin, tz), end=parse_wire_time(end, tz)
    )


def answers_qn(answer: Packet, qn: str) -> bool:
    """Whether ``answer`` is a 9014 (data) or 9013 (notification) answer echoing ``qn``."""
    return answer.cn in {"9013", "9014"} and answer.qn == qn


def is_answer_to(answer: Packet, sent: Packet) -> bool:
    """Whether ``answer`` is the 9014 (data) or 9013 (notification) answer to ``sent``."""
    return sent.qn is not None and answers_qn(answer, sent.qn)
