"""HJ 212-2017 packets: CRC16, framing, parsing with named errors, Flag bits, QN and times. Pure.

A packet (HJ 212-2017 §6.3, Table 2) is ``##`` + the data segment's length as 4 decimal digits
+ the data segment + its CRC16 as 4 hex digits + CR LF. The data segment (Table 3) is
``QN=…;ST=…;CN=…;PW=…;MN=…;Flag=…;[PNUM=…;PNO=…;]CP=&&…&&``; the CP area holds items separated
by ``;`` whose values are separated by ``,`` (``name=value``; §6.3.3). Packets are ASCII
(docs/push.md: the length counts characters, which equal bytes only for ASCII).

:func:`frame` builds a packet from a data segment, :func:`parse` takes one apart; every way a
packet can be wrong is one :class:`ErrorReason`. :class:`Packet` is the data segment as typed
fields, :meth:`Packet.segment` its text; ``parse(frame(p.segment())) == p``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import IntEnum, StrEnum

from carbonflow.domain.calendar import Zone, zone_of

HEADER = b"##"
TAIL = b"\r\n"
MAX_SEGMENT_CHARS = 1024
"""Longest data segment (Table 2) [characters]."""
MAX_CP_CHARS = 950
"""Longest CP field, ``CP=&&…&&`` included (Table 3) [characters]."""
MAX_PACKET_BYTES = 2 + 4 + MAX_SEGMENT_CHARS + 4 + 2
WIRE_ZONE = "Asia/Shanghai"
"""Times on the wire are Beijing time (REPORTING.md §1.8, to be checked per destination)."""

Cp = tuple[tuple[tuple[str, str], ...], ...]
"""A CP area: items (``;``-separated) of ``(name, value)`` pairs (``,``-separated)."""


class ErrorReason(StrEnum):
    BAD_HEADER = "bad_header"
    TOO_LONG = "too_long"
    LENGTH_MISMATCH = "length_mismatch"
    CRC_MISMATCH = "crc_mismatch"
    BAD_TAIL = "bad_tail"
    MALFORMED_SEGMENT = "malformed_segment"
    UNKNOWN_CN = "unknown_cn"


REASON_TEXT: Mapping[ErrorReason, tuple[str, str]] = {
    ErrorReason.BAD_HEADER: (
        "bad header: expected ## and 4 digits",
        "包头错误：应为 ## 及 4 位长度",
    ),
    ErrorReason.TOO_LONG: ("data segment longer than 1024 characters", "数据段超过 1024 字符"),
    ErrorReason.LENGTH_MISMATCH: ("length field does not match the packet", "数据段长度与包不符"),
    ErrorReason.CRC_MISMATCH: ("CRC16 does not match the data segment", "CRC16 校验错误"),
    ErrorReason.BAD_TAIL: ("packet does not end with CR LF", "包尾不是 CR LF"),
    ErrorReason.MALFORMED_SEGMENT: ("malformed data segment", "数据段格式错误"),
    ErrorReason.UNKNOWN_CN: ("unknown command code CN", "未知命令编码 CN"),
}


class Hj212Error(ValueError):
    """A packet that cannot be taken apart; ``reason`` says why, ``detail`` where."""

    def __init__(self, reason: ErrorReason, detail: str) -> None:
        english, chinese = REASON_TEXT[reason]
        super().__init__(f"{reason}: {english} / {chinese} ({detail})")
        self.reason = reason
        self.detail = detail


class Version(IntEnum):
    """The Flag version bits V5–V0 (Table 3). 2025: reported by third-party code, to be checked."""

    HJT212_2005 = 0
    HJ212_2017 = 1
    HJ212_2025 = 2


FLAG_ANSWER = 0b01
"""Flag bit A: the receiver must answer."""
FLAG_SPLIT = 0b10
"""Flag bit D: the packet carries PNUM/PNO."""


def flag_value(version: Version, *, answer: bool, split: bool = False) -> int:
    """The Flag integer: version in bits 7–2, D in bit 1, A in bit 0 (2017, answer → 5)."""
    return int(version) << 2 | (FLAG_SPLIT if split else 0) | (FLAG_ANSWER if answer else 0)


def flag_version(flag: int) -> int:
    """The version bits of a Flag (1 for HJ 212-2017)."""
    return flag >> 2


# Table 9, plus 9015 reported for HJ 212-2025: code → (English, Chinese).
COMMANDS: Mapping[str, tuple[str, str]] = {
    "1000": ("set answer timeout and retries", "设置超时时间及重发次数"),
    "1011": ("get field-unit time", "提取现场机时间"),
    "1012": ("set field-unit time", "设置现场机时间"),
    "1013": ("field-unit time calibration request", "现场机时间校准请求"),
    "1061": ("get real-time data interval", "提取实时数据间隔"),
    "1062": ("set real-time data interval", "设置实时数据间隔"),
    "1063": ("get minute data interval", "提取分钟数据间隔"),
    "1064": ("set minute data interval", "设置分钟数据间隔"),
    "1072": ("set access password", "设置现场机访问密码"),
    "2011": ("real-time data", "实时数据"),
    "2012": ("stop real-time data", "停止察看实时数据"),
    "2021": ("facility running state", "设备运行状态"),
    "2022": ("stop facility running state", "停止察看设备运行状态"),
    "2031": ("daily data", "日历史数据"),
    "2041": ("daily facility running time", "设备运行时间日历史数据"),
    "2051": ("minute data", "分钟数据"),
    "2061": ("hourly data", "小时数据"),
    "2081": ("logger power-on time", "数采仪开机时间"),
    "3011": ("zero/span calibration", "零点校准量程校准"),
    "3012": ("immediate sampling", "即时采样"),
    "3013": ("start flushing", "启动清洗/反吹"),
    "3014": ("compare sampling", "比对采样"),
    "3015": ("sample keeping", "超标留样"),
    "3016": ("set sampling period", "设置采样时间周期"),
    "3017": ("get sampling period", "提取采样时间周期"),
    "3018": ("get sample output time", "提取出样时间"),
    "3019": ("get device unique id", "提取设备唯一标识"),
    "3020": ("field-unit information", "现场机信息"),
    "3021": ("set field-unit parameters", "设置现场机参数"),
    "9011": ("request answer", "请求应答"),
    "9012": ("execution result", "执行结果"),
    "9013": ("notification answer", "通知应答"),
    "9014": ("data answer", "数据应答"),
    "9015": ("heartbeat (HJ 212-2025, to be checked)", "心跳（HJ 212-2025，待核实）"),
}
KNOWN_CNS_2017 = frozenset(COMMANDS) - {"9015"}
KNOWN_CNS_2025 = frozenset(COMMANDS)


def known_cns(version: Version) -> frozenset[str]:
    """The command codes a packet of ``version`` may carry."""
    return KNOWN_CNS_2025 if version >= Version.HJ212_2025 else KNOWN_CNS_2017


def crc16(segment: bytes) -> int:
    """CRC16 of HJ 212-2017 Appendix A: each byte is XORed into the register's *high* byte moved
    down (``reg >> 8``), not into the whole register as CRC-16/MODBUS does."""
    reg = 0xFFFF
    for byte in segment:
        reg = (reg >> 8) ^ byte
        for _ in range(8):
            lsb = reg & 1
            reg >>= 1
            if lsb:
                reg ^= 0xA001
    return reg & 0xFFFF


def frame(segment: str) -> bytes:
    """The complete packet of a data segment: ``##`` + length + segment + CRC (upper-case hex)
    + CR LF. A segment that is not ASCII or longer than 1024 characters is refused."""
    if not segment.isascii():
        raise Hj212Error(ErrorReason.MALFORMED_SEGMENT, "not ASCII")
    if len(segment) > MAX_SEGMENT_CHARS:
        raise Hj212Error(ErrorReason.TOO_LONG, f"{len(segment)} characters")
    data = segment.encode("ascii")
    return b"%s%04d%s%04X%s" % (HEADER, len(data), data, crc16(data), TAIL)


@dataclass(frozen=True)
class Packet:
    """One data segment as fields. ``None`` fields are left out of the segment."""

    st: str
    cn: str
    mn: str
    cp: Cp = ()
    qn: str | None = None
    pw: str | None = None
    flag: int | None = None
    pnum: int | None = None
    pno: int | None = None

    def segment(self, encode_cp: Callable[[str], str] | None = None) -> str:
        """The data segment's text; ``encode_cp`` transforms the CP area (SM4 under 2025)."""
        cp_text = cp_to_text(self.cp)
        if encode_cp is not None:
            cp_text = encode_cp(cp_text)
        fields = [
            ("QN", self.qn),
            ("ST", self.st),
            ("CN", self.cn),
            ("PW", self.pw),
            ("MN", self.mn),
            ("Flag", None if self.flag is None else str(self.flag)),
            ("PNUM", None if self.pnum is None else str(self.pnum)),
            ("PNO", None if self.pno is None else str(self.pno)),
        ]
        head = "".join(f"{name}={value};" for name, value in fields if value is not None)
        return f"{head}CP=&&{cp_text}&&"

    def value(self, name: str) -> str | None:
        """The first value named ``name`` in the CP area (``DataTime``, ``QnRtn`` …)."""
        for item in self.cp:
            for key, value in item:
                if key == name:
                    return value
        return None

    @property
    def wants_answer(self) -> bool:
        return self.flag is not None and bool(self.flag & FLAG_ANSWER)


def cp_to_text(cp: Cp) -> str:
    """The CP area's text: items joined by ``;``, pairs by ``,``."""
    return ";".join(",".join(f"{name}={value}" for name, value in item) for item in cp)


_CP_FORBIDDEN = re.compile(r"[;,&=]")
_NAME = re.compile(r"[^;,&=\s]+")


def cp_from_text(text: str) -> Cp:
    """The CP area of its text; an empty text is no items."""
    if not text:
        return ()
    if "&" in text:
        raise Hj212Error(ErrorReason.MALFORMED_SEGMENT, "& inside the CP area")
    items = []
    for item in text.split(";"):
        pairs = []
        for pair in item.split(","):
            name, sep, value = pair.partition("=")
            if not sep or not _NAME.fullmatch(name) or "=" in value:
                raise Hj212Error(ErrorReason.MALFORMED_SEGMENT, f"CP pair {pair[:40]!r}")
            pairs.append((name, value))
        items.append(tuple(pairs))
    return tuple(items)


def unframe(data: bytes) -> str:
    """The data segment of a complete packet, after checking header, length, CRC and tail."""
    if data[:2] != HEADER or len(data) < 6 or not data[2:6].isdigit():
        raise Hj212Error(ErrorReason.BAD_HEADER, repr(data[:6]))
    length = int(data[2:6])
    if length > MAX_SEGMENT_CHARS:
        raise Hj212Error(ErrorReason.TOO_LONG, f"{length} characters")
    if len(data) != 6 + length + 4 + 2:
        raise Hj212Error(
            ErrorReason.LENGTH_MISMATCH, f"field {length}, packet has {len(data) - 12} bytes"
        )
    segment, crc_text, tail = data[6 : 6 + length], data[6 + length : 10 + length], data[-2:]
    if tail != TAIL:
        raise Hj212Error(ErrorReason.BAD_TAIL, repr(tail))
    if not re.fullmatch(rb"[0-9A-Fa-f]{4}", crc_text) or int(crc_text, 16) != crc16(segment):
        raise Hj212Error(ErrorReason.CRC_MISMATCH, f"got {crc_text!r}, want {crc16(segment):04X}")
    if not segment.isascii():
        raise Hj212Error(ErrorReason.MALFORMED_SEGMENT, "not ASCII")
    return segment.decode("ascii")


def parse(
    data: bytes,
    *,
    cns: Iterable[str] = KNOWN_CNS_2017,
    decode_cp: Callable[[str], str] | None = None,
) -> Packet:
    """The packet ``data`` as fields; :class:`Hj212Error` names what is wrong with it."""
    return parse_segment(unframe(data), cns=cns, decode_cp=decode_cp)


_HEADER_RULES: Mapping[str, re.Pattern[str]] = {
    "QN": re.compile(r"\d{17}"),
    "ST": re.compile(r"[0-9A-Z]{2}"),
    "CN": re.compile(r"\d{4}"),
    "PW": re.compile(r"[^;,&=\s]{1,32}"),
    "MN": re.compile(r"[^;,&=\s]{1,32}"),
    "Flag": re.compile(r"\d{1,3}"),
    "PNUM": re.compile(r"[1-9]\d{0,3}"),
    "PNO": re.compile(r"[1-9]\d{0,3}"),
}


def _header_fields(head: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in head.split(";")[:-1]:
        name, sep, value = part.partition("=")
        rule = _HEADER_RULES.get(name)
        if not sep or rule is None or name in fields or not rule.fullmatch(value):
            raise Hj212Error(ErrorReason.MALFORMED_SEGMENT, f"field {part[:40]!r}")
        fields[name] = value
    for required in ("ST", "CN", "MN"):
        if required not in fields:
            raise Hj212Error(ErrorReason.MALFORMED_SEGMENT, f"no {required}")
    return fields


def _split_numbers(fields: Mapping[str, str]) -> tuple[int | None, int | None, int | None]:
    flag = int(fields["Flag"]) if "Flag" in fields else None
    if flag is not None and flag > 255:
        raise Hj212Error(ErrorReason.MALFORMED_SEGMENT, f"Flag {flag} > 255")
    pnum = int(fields["PNUM"]) if "PNUM" in fields else None
    pno = int(fields["PNO"]) if "PNO" in fields else None
    split = flag is not None and bool(flag & FLAG_SPLIT)
    if split != (pnum is not None) or split != (pno is not None):
        raise Hj212Error(ErrorReason.MALFORMED_SEGMENT, "PNUM/PNO disagree with Flag bit D")
    if pnum is not None and pno is not None and pno > pnum:
        raise Hj212Error(ErrorReason.MALFORMED_SEGMENT, f"PNO {pno} > PNUM {pnum}")
    return flag, pnum, pno


def parse_segment(
    segment: str,
    *,
    cns: Iterable[str] = KNOWN_CNS_2017,
    decode_cp: Callable[[str], str] | None = None,
) -> Packet:
    """The fields of a data segment (without ``##``, length, CRC and tail)."""
    at = segment.find("CP=&&")
    if at < 0 or not segment.endswith("&&") or len(segment) < at + 7:
        raise Hj212Error(ErrorReason.MALFORMED_SEGMENT, "no CP=&&…&&")
    head = segment[:at]
    if head and not head.endswith(";"):
        raise Hj212Error(ErrorReason.MALFORMED_SEGMENT, "CP must follow a ;")
    fields = _header_fields(head)
    flag, pnum, pno = _split_numbers(fields)
    if fields["CN"] not in frozenset(cns):
        raise Hj212Error(ErrorReason.UNKNOWN_CN, fields["CN"])
    cp_text = segment[at + 5 : -2]
    if decode_cp is not None:
        cp_text = decode_cp(cp_text)
    return Packet(
        st=fields["ST"],
        cn=fields["CN"],
        mn=fields["MN"],
        cp=cp_from_text(cp_text),
        qn=fields.get("QN"),
        pw=fields.get("PW"),
        flag=flag,
        pnum=pnum,
        pno=pno,
    )


def read_frames(buffer: bytes) -> tuple[list[bytes], bytes, int]:
    """Cut a TCP byte stream into packets: scan for ``##``, read the length, take the packet if
    it ends in CR LF, else drop up to the next ``##``. Returns the complete packets (their CRC
    still to be checked by :func:`parse`), the unconsumed rest and how many bytes were dropped."""
    frames: list[bytes] = []
    dropped = 0
    while True:
        start = buffer.find(HEADER)
        if start < 0:
            keep = 1 if buffer.endswith(b"#") else 0
            return frames, buffer[len(buffer) - keep :], dropped + len(buffer) - keep
        dropped += start
        buffer = buffer[start:]
        if len(buffer) < 6:
            return frames, buffer, dropped
        digits = buffer[2:6]
        end = 6 + int(digits) + 6 if digits.isdigit() else -1
        if end > 0 and int(digits) <= MAX_SEGMENT_CHARS and len(buffer) < end:
            return frames, buffer, dropped
        if end > 0 and buffer[end - 2 : end] == TAIL:
            frames.append(buffer[:end])
            buffer = buffer[end:]
            continue
        buffer = buffer[2:]
        dropped += 2


def wire_time(instant: datetime, tz: Zone = WIRE_ZONE) -> str:
    """``YYYYMMDDhhmmss`` of an aware instant in the wire time zone (DataTime, BeginTime …)."""
    return instant.astimezone(zone_of(tz)).strftime("%Y%m%d%H%M%S")


def parse_wire_time(text: str, tz: Zone = WIRE_ZONE) -> datetime:
    """The UTC instant of a ``YYYYMMDDhhmmss`` wire time."""
    if not re.fullmatch(r"\d{14}", text):
        raise Hj212Error(ErrorReason.MALFORMED_SEGMENT, f"time {text[:20]!r}")
    try:
        local = datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=zone_of(tz))
    except ValueError as error:
        raise Hj212Error(ErrorReason.MALFORMED_SEGMENT, f"time {text!r}") from error
    return local.astimezone(UTC)


def qn_at(instant: datetime, tz: Zone = WIRE_ZONE) -> str:
    """The QN of an instant: ``YYYYMMDDhhmmsszzz`` (milliseconds) in the wire time zone."""
    local = instant.astimezone(zone_of(tz))
    return local.strftime("%Y%m%d%H%M%S") + f"{local.microsecond // 1000:03d}"


def next_qn(now: datetime, last: str | None, tz: Zone = WIRE_ZONE) -> str:
    """A QN for a new interaction at ``now`` that is later than ``last``: QNs must identify one
    interaction each, so two packets in one millisecond (or a clock step back) get ``last``
    plus 1 ms."""
    candidate = qn_at(now, tz)
    if last is None or candidate > last:
        return candidate
    previous = datetime.strptime(last[:14], "%Y%m%d%H%M%S").replace(
        microsecond=int(last[14:]) * 1000, tzinfo=zone_of(tz)
    )
    return qn_at(previous + timedelta(milliseconds=1), tz)
