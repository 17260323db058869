"""Site files into the registry tables of a real, migrated PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from carbonflow.domain.site.model import SiteDocument, document_json, document_sha256
from carbonflow.sites.loader import EXAMPLES, load_site_file
from carbonflow.storage.registry_load import list_sites, load_site, load_sites
from cli.main import main

pytestmark = pytest.mark.integration

MINE = EXAMPLES / "shanxi-mine.yaml"
PARK = EXAMPLES / "inner-mongolia-park.yaml"
REGISTRY_TABLES = (
    "site",
    "organisation",
    "node",
    "flow_edge",
    "product",
    "metric",
    "device",
    "device_metric",
)


def dump(database_url: str) -> dict[str, list[str]]:
    """Every row of every registry table as JSON text, sorted: equal dumps, equal tables."""
    with psycopg.connect(database_url) as conn:
        return {
            table: [
                row[0]
                for row in conn.execute(f"SELECT to_jsonb(t)::text FROM {table} t ORDER BY 1")
            ]
            for table in REGISTRY_TABLES
        }


def query(database_url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(sql, params).fetchall()


def count(database_url: str, table: str, site_id: str) -> int:
    (row,) = query(database_url, f"SELECT count(*) FROM {table} WHERE site_id = %s", site_id)
    return int(row[0])


@pytest.mark.parametrize("path", [MINE, PARK], ids=["mine", "park"])
def test_example_loads_into_the_registry(database_url: str, path: Path) -> None:
    doc = load_site_file(path)
    report = load_site(database_url, doc)
    site_id = doc.site.id
    assert report.status == "created"
    assert report.document_sha256 == document_sha256(doc)
    assert report.devices == len(doc.devices)
    assert count(database_url, "organisation", site_id) == len(doc.organisations)
    assert count(database_url, "node", site_id) == len(doc.nodes)
    assert count(database_url, "flow_edge", site_id) == len(doc.edges)
    assert count(database_url, "product", site_id) == len(doc.products)
    assert count(database_url, "device", site_id) == len(doc.devices)
    (metrics,) = query(
        database_url,
        "SELECT count(*) FROM device_metric dm JOIN device d USING (device_pk)"
        " WHERE d.site_id = %s",
        site_id,
    )
    assert metrics[0] == sum(len(d.metrics) for d in doc.devices)
    ((stored, province, baseline_year),) = query(
        database_url,
        "SELECT document, province, baseline_year FROM site WHERE site_id = %s",
        site_id,
    )
    assert stored == document_json(doc)
    assert SiteDocument.model_validate(stored) == doc
    assert (province, baseline_year) == (doc.site.province.value, 2020)
    # metric units are the canonical symbols of the name suffixes
    units = dict(query(database_url, "SELECT name, unit FROM metric"))
    assert units["power_kw"] == "kW"
    assert units["energy_import_kwh"] == "kWh"


def test_mine_device_rows(database_url: str) -> None:
    load_site(database_url, load_site_file(MINE))
    ((multiplier, modulus, active, attributes),) = query(
        database_url,
        "SELECT multiplier, counter_modulus, active, attributes FROM device"
        " WHERE site_id = 'shanxi-jinzhong-mine' AND device_id = 'grid-line-1'",
    )
    assert (multiplier, modulus, active) == (132_000, 1_000_000, True)
    assert attributes["serial"] == "3310012345678"
    assert attributes["sim"]["rated_kw"] == 40_000
    rows = query(
        database_url,
        "SELECT m.name, dm.kind, dm.rated_max FROM device_metric dm"
        " JOIN metric m USING (metric_id) JOIN device d USING (device_pk)"
        " WHERE d.device_id = 'drainage-high' ORDER BY m.name",
    )
    assert rows == [
        ("ch4_nm3", "counter", None),
        ("ch4_pct", "gauge", 100.0),
        ("mixture_flow_nm3_min", "gauge", 300.0),
        ("mixture_nm3", "counter", None),
    ]


def test_loading_twice_changes_nothing(database_url: str) -> None:
    docs = [load_site_file(MINE), load_site_file(PARK)]
    assert [r.status for r in load_sites(database_url, docs)] == ["created", "created"]
    before = dump(database_url)
    again = load_sites(database_url, [load_site_file(MINE), load_site_file(PARK)])
    assert [r.status for r in again] == ["unchanged", "unchanged"]
    assert dump(database_url) == before


def _changed_mine(doc: SiteDocument) -> SiteDocument:
    """The mine without its EV charging and its flare, a new multiplier, a new metric."""
    data = document_json(doc)
    gone = {"ev-charging", "flare"}
    data["devices"] = [d for d in data["devices"] if d["id"] not in gone]
    data["edges"] = [
        e
        for e in data["edges"]
        if not set(e["meters"]) & gone and "flare-station" not in (e["source"], e["target"])
    ]
    data["nodes"] = [n for n in data["nodes"] if n["id"] != "flare-station"]
    data["organisations"][0]["name"] = "Jinzhong Coal Co. (renamed)"
    for d in data["devices"]:
        if d["id"] == "grid-line-1":
            d["multiplier"] = 264_000
        if d["id"] == "buildings-heat":
            d["metrics"]["supply_temp_degc"] = {"kind": "gauge"}
    return SiteDocument.model_validate(data)


def test_changed_file_updates_the_registry(database_url: str) -> None:
    original = load_site_file(MINE)
    load_site(database_url, original)
    pks_before = dict(query(database_url, "SELECT device_id, device_pk FROM device"))

    changed = _changed_mine(original)
    report = load_site(database_url, changed)
    assert report.status == "updated"
    assert report.deactivated == ("ev-charging", "flare")
    site_id = original.site.id
    # removed devices are kept, inactive; the others keep their device_pk
    assert count(database_url, "device", site_id) == len(original.devices)
    inactive = query(database_url, "SELECT device_id FROM device WHERE NOT active ORDER BY 1")
    assert inactive == [("ev-charging",), ("flare",)]
    assert dict(query(database_url, "SELECT device_id, device_pk FROM device")) == pks_before
    # removed nodes and edges are deleted
    assert count(database_url, "node", site_id) == len(original.nodes) - 1
    assert count(database_url, "flow_edge", site_id) == len(changed.edges)
    assert query(database_url, "SELECT 1 FROM node WHERE node_id = 'flare-station'") == []
    assert query(database_url, "SELECT name FROM organisation") == [
        ("Jinzhong Coal Co. (renamed)",)
    ]
    assert query(database_url, "SELECT multiplier FROM device WHERE device_id = 'grid-line-1'") == [
        (264_000,)
    ]
    assert query(database_url, "SELECT unit FROM metric WHERE name = 'supply_temp_degc'") == [
        ("degC",)
    ]
    heat_metrics = query(
        database_url,
        "SELECT m.name FROM device_metric JOIN metric m USING (metric_id)"
        " JOIN device d USING (device_pk) WHERE d.device_id = 'buildings-heat' ORDER BY 1",
    )
    assert heat_metrics == [("heat_gj",), ("power_kw",), ("supply_temp_degc",)]
    ((stored_sha,),) = query(database_url, "SELECT document_sha256 FROM site")
    assert stored_sha == document_sha256(changed)

    # the original file again: the devices come back active with their old device_pk
    back = load_site(database_url, original)
    assert (back.status, back.deactivated) == ("updated", ())
    assert query(database_url, "SELECT device_id FROM device WHERE NOT active") == []
    assert dict(query(database_url, "SELECT device_id, device_pk FROM device")) == pks_before
    assert count(database_url, "node", site_id) == len(original.nodes)


def _broken_copy(tmp_path: Path) -> Path:
    text = MINE.read_text(encoding="utf-8").replace(
        "carrier: coal_mine_methane", "carrier: methane", 1
    )
    broken = tmp_path / "shanxi-mine.yaml"
    broken.write_text(text, encoding="utf-8")
    return broken


def test_broken_file_leaves_the_registry_unchanged(
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("DATABASE_URL", database_url)
    load_site(database_url, load_site_file(MINE))
    before = dump(database_url)
    # the park is valid, the mine is not: neither is written
    assert main(["sites", "load", str(PARK), str(_broken_copy(tmp_path))]) == 1
    err = capsys.readouterr().err
    assert "shanxi-mine.yaml:" in err
    assert "unknown carrier 'methane'" in err
    assert dump(database_url) == before


def test_same_site_twice_in_one_load_writes_nothing(database_url: str) -> None:
    before = dump(database_url)
    mine = load_site_file(MINE)
    with pytest.raises(ValueError, match="shanxi-jinzhong-mine"):
        load_sites(database_url, [mine, mine])
    assert dump(database_url) == before


def test_cli_load_and_list(
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert main(["sites", "load", str(MINE), str(PARK)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("shanxi-jinzhong-mine: created (1 organisations, 28 nodes")
    assert out[1].startswith("inner-mongolia-ordos-park: created (4 organisations")

    assert main(["sites", "load", str(MINE)]) == 0
    assert "shanxi-jinzhong-mine: unchanged" in capsys.readouterr().out

    assert main(["sites", "list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in listing] == [
        "inner-mongolia-ordos-park",
        "shanxi-jinzhong-mine",
    ]
    assert "\t44 devices\t0 inactive\t" in listing[1]
    assert [s.site_id for s in list_sites(database_url)] == [
        "inner-mongolia-ordos-park",
        "shanxi-jinzhong-mine",
    ]


def test_cli_without_database_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert main(["sites", "load", str(MINE)]) == 1
    err = capsys.readouterr().err
    assert "DATABASE_URL" in err
    assert "carbonflow demo" in err
    # validating needs no database
    assert main(["sites", "validate", str(MINE), str(PARK)]) == 0
    assert main(["sites", "validate", str(_broken_copy(tmp_path))]) == 1
    assert "unknown carrier 'methane'" in capsys.readouterr().err
