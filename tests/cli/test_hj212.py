"""``carbonflow hj212 frame / parse / crc`` on REPORTING.md's example packets."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import pytest

from carbonflow.domain.reporting.hj212 import Version, frame
from carbonflow.domain.reporting.hj212_2025 import sm4_encode_cp
from carbonflow.domain.reporting.hj212_flow import (
    CodeValues,
    DataFlag,
    Identity,
    data_cp,
    data_packets,
)
from cli.main import main
from tests.domain.reporting import examples as ex


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["hj212", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_frame_prints_exactly_the_packet(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "frame", ex.E1[6:-6].decode())
    assert code == 0
    assert out.encode("ascii") == ex.E1  # ## + 0206 + segment + 5B40 + CR LF, nothing else


def test_crc_prints_four_upper_case_hex_digits(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(capsys, "crc", ex.E2[6:-6].decode()) == (0, "6D40\n", "")


def test_parse_prints_the_fields(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "parse", ex.E5.decode().strip())  # without CR LF
    assert code == 0
    assert "CN: 9011" in out
    assert "request answer / 请求应答" in out
    assert "CP: QnRtn=1" in out
    code, out, _ = _run(capsys, "parse", "--json", ex.E3.decode())
    fields = json.loads(out)
    assert fields["Flag"] == 5 and fields["answer_requested"] is True
    assert fields["CP"][2]["a05001-Avg"] == "126540.2"


def test_parse_reads_stdin(capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(ex.E6A)))
    code, out, _ = _run(capsys, "parse", "-")
    assert code == 0 and "PNO: 1" in out


def test_parse_names_the_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "parse", ex.E2[:-6].decode() + "C579")
    assert (code, out) == (1, "")
    assert err.startswith("crc_mismatch") and "校验错误" in err
    code, _, err = _run(capsys, "frame", "ST=91;CN=9014;MN=X;CP=&&a=" + "1" * 1024 + "&&")
    assert code == 1 and err.startswith("too_long")


def test_parse_decrypts_a_2025_packet(capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    key = "0123456789abcdeffedcba9876543210"
    identity = Identity(st="44", pw="1", mn="M1", version=Version.HJ212_2025)
    cp = data_cp(datetime(2026, 1, 1, tzinfo=UTC), [CodeValues("e1", DataFlag.NORMAL, "2.5")])
    (packet,) = data_packets(identity, "2061", cp, ["20260101080000000"])
    wire = frame(packet.segment(sm4_encode_cp(bytes.fromhex(key)))).decode()
    monkeypatch.setenv("PUSH_KEY", key)
    code, out, _ = _run(
        capsys, "parse", "--protocol-version", "2025", "--sm4-key-env", "PUSH_KEY", wire
    )
    assert code == 0 and "CP: e1-Cou=2.5, e1-Flag=N" in out
    monkeypatch.setenv("PUSH_KEY", "xyz")
    assert _run(capsys, "parse", "--sm4-key-env", "PUSH_KEY", wire)[0] == 2
