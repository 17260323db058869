"""Render ``docs/img/ledger-pdf-zh.png``: page 1 of the PDF of one month's enterprise ledger.

    .venv/bin/python -m tests.support.ledger_pdf_image [docs/img/ledger-pdf-zh.png]

A private PostgreSQL (embedded, non-durable) gets the example park, three days of generated
15-min readings of May 2025 (the generator of the calc tests) and the real calc engine's results;
the cathode plant's May ledger is closed (revision 1) through the API and downloaded as the Chinese
PDF, and its first page rendered with ``pdftoppm`` (poppler-utils) at 100 dpi. Needs the CJK font
of ``scripts/ensure-chromium.sh`` for the embedded WenQuanYi Micro Hei.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from carbonflow.embedded.postgres import EmbeddedPostgres
from carbonflow.sites.loader import EXAMPLES, load_site_file
from carbonflow.storage.migrate import upgrade
from carbonflow.storage.registry_load import load_site
from tests.support.api_support import ADMIN_KEY, make_app
from tests.support.calc_generator import generate, month_start, run_calc, store_readings

PARK = "inner-mongolia-ordos-park"
ORG = "cathode-plant"
MONTH = "2025-05"
DAYS = 3
DPI = 100


def ledger_pdf(url: str) -> bytes:
    """The cathode plant's closed May ledger as the Chinese PDF, on a migrated empty ``url``."""
    doc = load_site_file(EXAMPLES / "inner-mongolia-park.yaml")
    load_site(url, doc)
    start = month_start(2025, 5) + timedelta(days=10)
    data = generate(doc, start, start + timedelta(days=DAYS), period=timedelta(minutes=15))
    store_readings(url, PARK, data)
    run_calc(url)
    base = f"/api/v1/sites/{PARK}/organisations/{ORG}/ledgers/{MONTH}"
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with TestClient(make_app(url)) as client:
        closed = client.post(f"{base}/close", headers=auth)
        assert closed.status_code == 201, closed.text
        pdf = client.get(
            f"{base}/revisions/1", params={"format": "pdf", "lang": "zh"}, headers=auth
        )
        assert pdf.status_code == 200, pdf.text
        return bytes(pdf.content)


def main(out: Path, pages: int = 1) -> None:
    work = Path(tempfile.mkdtemp(prefix="carbonflow-ledger-image-"))
    work.chmod(0o711)  # as root, the server runs as another user (as in tests/conftest.py)
    server = EmbeddedPostgres(work / "pg", durable=False)
    server.start()
    try:
        url = server.url
        upgrade(url)
        pdf = work / "ledger.pdf"
        pdf.write_bytes(ledger_pdf(url))
        prefix = work / "page"
        subprocess.run(
            ["pdftoppm", "-png", "-r", str(DPI), "-f", "1", "-l", str(pages), str(pdf),
             str(prefix)],
            check=True,
        )  # fmt: skip
        for n, page in enumerate(sorted(work.glob("page*.png")), start=1):
            shutil.copyfile(page, out if n == 1 else out.with_stem(f"{out.stem}-{n}"))
        print(f"wrote {out} from {pdf}")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    # [out.png [pages]]: page 1 to out.png; pages 2… beside it (out-2.png …), for a look.
    main(
        Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img/ledger-pdf-zh.png"),
        int(sys.argv[2]) if len(sys.argv) > 2 else 1,
    )
