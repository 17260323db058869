"""``carbonflow sites``: every load a revision; export writes the current document back to a
file that loads to the same document; an exported file older than the site is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from carbonflow.domain.site.model import document_sha256
from carbonflow.sites.loader import EXAMPLES, load_site_file
from carbonflow.storage.db import make_engine
from carbonflow.storage.registry_load import write_site
from carbonflow.storage.site_revisions import Authorship
from cli.main import main

pytestmark = pytest.mark.integration

MINE_FILE = EXAMPLES / "shanxi-mine.yaml"
MINE = "shanxi-jinzhong-mine"


def test_load_export_reload_and_the_stale_file_guard(
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert main(["sites", "load", str(MINE_FILE), "--reason", "first load"]) == 0
    exported = tmp_path / "mine.yaml"
    assert main(["sites", "export", MINE, "-o", str(exported)]) == 0
    assert exported.read_text().startswith(f"# carbonflow site {MINE} revision 1,")
    # the exported file is the same document
    assert document_sha256(load_site_file(exported)) == document_sha256(load_site_file(MINE_FILE))
    assert main(["sites", "load", str(exported)]) == 0
    assert f"{MINE}: unchanged" in capsys.readouterr().out

    # the site changes elsewhere (as through the API): revision 2
    doc = load_site_file(MINE_FILE)
    renamed = doc.model_copy(update={"site": doc.site.model_copy(update={"name": "Renamed"})})
    engine = make_engine(database_url)
    with engine.begin() as conn:
        write_site(conn, renamed, Authorship("cf_key (ops)", "renamed by API", "api"))
    engine.dispose()
    # the file exported from revision 1 no longer loads, unless forced
    assert main(["sites", "load", str(exported)]) == 1
    err = capsys.readouterr().err
    assert "exported from revision 1" in err and "revision 2 now" in err and "renamed by API" in err
    assert main(["sites", "load", str(exported), "--force", "--reason", "back to the file"]) == 0
    assert "updated" in capsys.readouterr().out
    assert main(["sites", "revisions", MINE]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == ["3", "2", "1"]
    assert lines[0].endswith("1 changes\tback to the file") and "\tfile\t" in lines[0]
    assert "\tapi\tcf_key (ops)\t" in lines[1]
    assert main(["sites", "export", "nowhere"]) == 1
