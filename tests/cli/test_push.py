"""``carbonflow push check / --once / status`` with a destinations file and secrets in the
environment; the platform is the fake HJ 212 server of tests/support (a test double of the
authority's server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from carbonflow.domain.reporting.hj212 import parse
from cli.main import main
from simulators.authority import AuthorityPlatform
from tests.support.calc_generator import computed_small_site

PROFILE = """
destinations:
  - name: shanxi-eco
    protocol: hj212
    version: "2017"
    host: 127.0.0.1
    port: {port}
    site: small-plant
    st: "31"
    mn_env: TEST_PUSH_MN
    pw_env: TEST_PUSH_PW
    cns: ["2031"]
    overtime_s: 2
    recount: 1
    start: 2025-05-01T00:00:00+08:00
    codes:
      - {{source: co2_t, code: a05001, unit: kg, places: 1}}
      - {{source: "activity:electricity", code: i33201, unit: kWh, places: 1}}
"""


@pytest.fixture
def profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "destinations.yaml"
    path.write_text(PROFILE.format(port=9), encoding="utf-8")
    monkeypatch.setenv("CARBONFLOW_PUSH_DESTINATIONS", str(path))
    monkeypatch.setenv("TEST_PUSH_MN", "3A0000C17E0004200000B52F")
    monkeypatch.setenv("TEST_PUSH_PW", "530719")
    return path


def test_check_prints_the_destinations(profile: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["push", "check"]) == 0
    out = capsys.readouterr().out
    assert "shanxi-eco: HJ212_2017 to 127.0.0.1:9, site small-plant, ST 31, CN 2031" in out


def test_a_missing_secret_is_named(
    profile: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEST_PUSH_PW")
    assert main(["push", "check"]) == 2
    assert "TEST_PUSH_PW" in capsys.readouterr().err


def test_no_destinations_file(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CARBONFLOW_PUSH_DESTINATIONS", raising=False)
    assert main(["push", "check"]) == 2
    assert "CARBONFLOW_PUSH_DESTINATIONS" in capsys.readouterr().err


@pytest.mark.integration
def test_one_cycle_pushes_the_day_and_status_shows_it(
    database_url: str,
    profile: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    computed_small_site(database_url, days=1)
    platform = AuthorityPlatform()
    platform.start()
    try:
        profile.write_text(PROFILE.format(port=platform.port), encoding="utf-8")
        monkeypatch.setenv("DATABASE_URL", database_url)
        assert main(["push", "--once"]) == 0
    finally:
        platform.stop()
    (upload,) = platform.uploads()
    packet = parse(upload.raw)
    assert (packet.cn, packet.value("DataTime")) == ("2031", "20250501000000")
    capsys.readouterr()
    assert main(["push", "status"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("shanxi-eco\t0\t1\t")
