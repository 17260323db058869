"""``carbonflow hj212 frame / parse / crc`` on REPORTING.md's example packets."""

from __future__ import annotations

import io
import json
import signal
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from carbonflow.domain.reporting.hj212 import Version, frame, parse
from carbonflow.domain.reporting.hj212_2025 import sm4_encode_cp
from carbonflow.domain.reporting.hj212_flow import (
    CodeValues,
    DataFlag,
    Identity,
    data_cp,
    data_packets,
)
from carbonflow.embedded.net import free_port
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


def test_receive_answers_an_upload_with_its_qn_and_logs_it(tmp_path: Path) -> None:
    """`carbonflow hj212 receive`: an integrator's local monitoring centre, as a process."""
    port, log = free_port(), tmp_path / "received.jsonl"
    command = ["hj212", "receive", "--port", str(port), "--received-log", str(log)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", *command], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert f"listening on 127.0.0.1:{port}" in proc.stdout.readline()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(ex.E1)  # E1 asks for an answer (Flag=5)
            answer = conn.recv(4096)
            conn.sendall(ex.E1[:-3] + b"X\r\n")  # the CRC's last digit changed
            assert "unreadable packet" in proc.stdout.readline() + proc.stdout.readline()
        uploaded, answered = parse(ex.E1), parse(answer)
        assert answered.cn == "9014" and answered.qn == uploaded.qn
        lines = [json.loads(line) for line in log.read_text().splitlines()]
        assert [(e["cn"], e["qn"], e["answered"], e["valid"]) for e in lines] == [
            (uploaded.cn, uploaded.qn, True, True),
            (None, None, False, False),
        ]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
