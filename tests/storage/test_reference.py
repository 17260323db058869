"""calc_supplement.yaml moved into the factor library: a database synced from the old location
sees the moved file as unchanged (same file name, version and bytes), so stored rows and the
factor versions on results keep their meaning and nothing is recomputed."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest

from carbonflow.domain.factors.library import SUPPLEMENT_FILE, package_data_files
from carbonflow.storage import reference as ref

pytestmark = pytest.mark.integration


def test_moved_supplement_syncs_as_unchanged(database_url: str, tmp_path: Path) -> None:
    # The file as it was before the move: the same bytes under services/calc/reference/.
    old_dir = tmp_path / "services" / "calc" / "reference"
    old_dir.mkdir(parents=True)
    old_file = old_dir / "calc_supplement.yaml"
    shutil.copyfile(SUPPLEMENT_FILE, old_file)
    before_move = [p for p in package_data_files() if p.name != SUPPLEMENT_FILE.name] + [old_file]
    with psycopg.connect(database_url) as conn:
        first = {s.file_name: s.status for s in ref.sync_reference_files(conn, before_move)}
        assert first["calc_supplement.yaml"] == "inserted"
        stored_before = conn.execute(
            "SELECT file_name, version, sha256 FROM factor_file ORDER BY 1, 2"
        ).fetchall()
        # After the move: the calc service's reference files are the package's data files.
        assert SUPPLEMENT_FILE in package_data_files()
        after = ref.sync_reference_files(conn, package_data_files())
        assert {s.status for s in after} == {"unchanged"}
        # Listing the old alias beside the package files is harmless (a file given twice).
        again = ref.sync_reference_files(conn, [*package_data_files(), SUPPLEMENT_FILE])
        assert [s.file_name for s in again].count("calc_supplement.yaml") == 1
        stored_after = conn.execute(
            "SELECT file_name, version, sha256 FROM factor_file ORDER BY 1, 2"
        ).fetchall()
        assert stored_after == stored_before
        library = ref.library_from_db(conn)
        diesel = library.get("density.diesel")
        assert (diesel.value, diesel.unit, diesel.file) == (0.84, "kg/L", "calc_supplement.yaml")
        assert diesel.version == "calc-supplement-2026-11-22"
