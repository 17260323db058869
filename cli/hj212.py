"""``carbonflow hj212``: the HJ 212 codec for integrators (docs/push.md). No database needed.

    carbonflow hj212 frame SEGMENT    the complete packet: ## + length + SEGMENT + CRC + CR LF
    carbonflow hj212 parse PACKET     the packet's fields, or the named error (exit 1)
    carbonflow hj212 crc SEGMENT      the CRC16 of a data segment (4 upper-case hex digits)
    carbonflow hj212 receive          a local monitoring centre (上位机) that answers uploads

PACKET may omit the final CR LF (a shell argument rarely carries one) or be ``-`` for stdin.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from carbonflow.domain.reporting.hj212 import (
    COMMANDS,
    TAIL,
    Hj212Error,
    Packet,
    Version,
    crc16,
    flag_version,
    frame,
    known_cns,
    parse,
)
from carbonflow.domain.reporting.hj212_2025 import sm4_decode_cp

_VERSIONS = {"2017": Version.HJ212_2017, "2025": Version.HJ212_2025}


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "hj212", help="frame, parse and check HJ 212 packets / HJ 212 数据包组包、解析、校验"
    )
    actions = parser.add_subparsers(dest="hj212_action", required=True, metavar="ACTION")
    framing = actions.add_parser("frame", help="print the complete packet of a data segment")
    framing.add_argument("segment", metavar="SEGMENT", help="QN=…;ST=…;CN=…;…;CP=&&…&&")
    framing.set_defaults(handler=run_frame)
    crc = actions.add_parser("crc", help="print the CRC16 of a data segment")
    crc.add_argument("segment", metavar="SEGMENT")
    crc.set_defaults(handler=run_crc)
    parsing = actions.add_parser("parse", help="print a packet's fields or its error")
    parsing.add_argument("packet", metavar="PACKET", help="##nnnn…CRC[CR LF], or - for stdin")
    parsing.add_argument("--protocol-version", choices=sorted(_VERSIONS), default="2017")
    parsing.add_argument(
        "--sm4-key-env",
        metavar="VAR",
        help="decrypt the CP area with the SM4 key (32 hex digits) in this environment variable",
    )
    parsing.add_argument("--json", action="store_true", help="print the fields as JSON")
    parsing.set_defaults(handler=run_parse)
    receiving = actions.add_parser(
        "receive",
        help="run a local HJ 212 monitoring centre that answers every upload (for testing a "
        "field unit or `carbonflow push`) / 本地模拟上位机",
    )
    receiving.add_argument("--host", default="127.0.0.1")
    receiving.add_argument("--port", type=int, default=9212)
    receiving.add_argument(
        "--received-log",
        type=Path,
        default=None,
        help="append each packet received as a JSON line",
    )
    receiving.add_argument(
        "--sm4-key-env", metavar="VAR", help="HJ 212-2025: decrypt CP areas with this key"
    )
    receiving.set_defaults(handler=run_receive)


def run_frame(args: argparse.Namespace) -> int:
    try:
        packet = frame(args.segment)
    except Hj212Error as error:
        print(error, file=sys.stderr)
        return 1
    sys.stdout.write(packet.decode("ascii"))
    return 0


def run_crc(args: argparse.Namespace) -> int:
    if not args.segment.isascii():
        print("the segment is not ASCII / 数据段不是 ASCII", file=sys.stderr)
        return 1
    print(f"{crc16(args.segment.encode('ascii')):04X}")
    return 0


def _packet_bytes(text: str) -> bytes:
    data = sys.stdin.buffer.read() if text == "-" else text.encode("utf-8")
    data = data.rstrip(b"\n") if not data.endswith(TAIL) else data
    return data if data.endswith(TAIL) else data + TAIL


def _fields(packet: Packet) -> dict[str, object]:
    english, chinese = COMMANDS.get(packet.cn, ("?", "?"))
    flag = packet.flag
    return {
        "QN": packet.qn,
        "ST": packet.st,
        "CN": packet.cn,
        "command": f"{english} / {chinese}",
        "PW": packet.pw,
        "MN": packet.mn,
        "Flag": flag,
        "version_bits": None if flag is None else flag_version(flag),
        "answer_requested": packet.wants_answer,
        "PNUM": packet.pnum,
        "PNO": packet.pno,
        "CP": [dict(item) for item in packet.cp],
    }


def run_parse(args: argparse.Namespace) -> int:
    version = _VERSIONS[args.protocol_version]
    decode = None
    if args.sm4_key_env:
        try:
            decode = sm4_decode_cp(bytes.fromhex(os.environ.get(args.sm4_key_env, "")))
            decode("")
        except ValueError:
            print(
                f"{args.sm4_key_env} must hold an SM4 key of 32 hex digits / "
                "须为 32 位十六进制 SM4 密钥",
                file=sys.stderr,
            )
            return 2
    try:
        packet = parse(_packet_bytes(args.packet), cns=known_cns(version), decode_cp=decode)
    except Hj212Error as error:
        print(error, file=sys.stderr)
        return 1
    fields = _fields(packet)
    if args.json:
        print(json.dumps(fields, ensure_ascii=False))
        return 0
    for name, value in fields.items():
        if name != "CP" and value is not None:
            print(f"{name}: {value}")
    for item in packet.cp:
        print("CP: " + ", ".join(f"{key}={value}" for key, value in item))
    return 0


def run_receive(args: argparse.Namespace) -> int:
    """Answer uploads until Ctrl-C; one line per packet on stdout (and in ``--log``)."""
    from simulators.authority import AuthorityPlatform

    key = None
    if args.sm4_key_env:
        try:
            key = bytes.fromhex(os.environ[args.sm4_key_env])
        except (KeyError, ValueError):
            print(f"{args.sm4_key_env} must hold the SM4 key as 32 hex digits", file=sys.stderr)
            return 2
    platform = AuthorityPlatform(
        host=args.host,
        port=args.port,
        log_path=args.received_log,
        sm4_key=key,
        on_receive=_print_receipt,
    )
    try:
        platform.start()
    except OSError as error:
        print(f"cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 2
    print(f"listening on {args.host}:{platform.port} (HJ 212; Ctrl-C stops)", flush=True)
    stop = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    stop.wait()
    platform.stop()
    return 0


def _print_receipt(number: int, packet: Packet | None, answered: bool) -> None:
    if packet is None:
        print(f"#{number} unreadable packet (not answered)", flush=True)
        return
    when = packet.value("DataTime") or "-"
    state = "answered 9014" if answered else "no answer asked"
    print(f"#{number} CN={packet.cn} QN={packet.qn} DataTime={when} {state}", flush=True)
