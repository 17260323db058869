"""The push part of ``carbonflow demo``: the mine's results pushed over HJ 212 to a local
monitoring centre the demo starts (docs/push.md, "In the demo").

Without ``CARBONFLOW_PUSH_DESTINATIONS`` the demo starts a simulated authority platform
(:mod:`simulators.authority`) on a local port, writes the destinations file it uses to
``<data dir>/push-destinations.yaml`` (the template for a real platform: change host, port,
ST, codes and the MN/PW variables), and logs every packet the platform receives to
``<data dir>/push-received.jsonl``. With the variable set, the demo pushes to the destinations
of that file instead and starts no local platform.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from carbonflow.domain.reporting.profile import (
    destinations_from_document,
    energy_destinations_from_document,
)
from cli.push import Profiles, load_destinations, make_worker

if TYPE_CHECKING:
    from services.push.worker import PushWorker
    from simulators.authority import AuthorityPlatform

DESTINATIONS_FILE = "push-destinations.yaml"
RECEIVED_LOG = "push-received.jsonl"
DEMO_SITE = "shanxi-jinzhong-mine"
# The identity a real platform assigns (ST, MN, PW); the demo's own values, set in the
# environment of the demo process only, as a real deployment sets its secrets.
_DEMO_SECRETS = {
    "CARBONFLOW_DEMO_PUSH_MN": "DEMO0000SHANXIJINZHONGMINE01",
    "CARBONFLOW_DEMO_PUSH_PW": "123456",
}


def demo_profile(port: int, start: datetime) -> dict[str, object]:
    """The destinations document of the demo: the mine, hourly and daily, CO2, CH4 and
    electricity (codes as in docs/push.md's example — to be agreed with a real platform)."""
    return {
        "destinations": [
            {
                "name": "demo-platform",
                "protocol": "hj212",
                "version": "2017",
                "host": "127.0.0.1",
                "port": port,
                "site": DEMO_SITE,
                "st": "31",
                "mn_env": "CARBONFLOW_DEMO_PUSH_MN",
                "pw_env": "CARBONFLOW_DEMO_PUSH_PW",
                "cns": ["2061", "2031"],
                "overtime_s": 5,
                "recount": 3,
                "start": start.isoformat(),
                "codes": [
                    {"source": "co2_t", "code": "a05001", "unit": "kg", "places": 1},
                    {"source": "ch4_t", "code": "a05002", "unit": "g", "places": 1},
                    {"source": "activity:electricity", "code": "i33201", "unit": "kWh"},
                ],
            }
        ]
    }


@dataclass
class DemoPush:
    """A push worker for the demo, what it pushes to, and the local platform when it started
    one."""

    worker: PushWorker
    stop: threading.Event
    platform: AuthorityPlatform | None
    described: str

    def run(self) -> int:
        self.worker.run(self.stop)
        return 0

    def halt(self) -> None:
        self.stop.set()
        if self.platform is not None:
            self.platform.stop()


def start(database_url: str, data_dir: Path, port: int, first: datetime) -> DemoPush:
    """The push of the demo: to the destinations of ``CARBONFLOW_PUSH_DESTINATIONS``, or to a
    local platform started here on ``port`` whose file is written to ``data_dir`` (periods from
    ``first`` on, the first time; the outbox's cursor afterwards)."""
    from carbonflow.storage.db import make_engine
    from services.push.settings import PushSettings
    from simulators.authority import AuthorityPlatform

    settings = PushSettings(DATABASE_URL=database_url)
    platform: AuthorityPlatform | None = None
    if settings.destinations_file is not None:
        profiles = load_destinations(settings.destinations_file)
        described = f"{profiles.describe()} (from {settings.destinations_file})"
    else:
        profile = demo_profile(port, first)
        path = data_dir / DESTINATIONS_FILE
        path.write_text(_HEADER + yaml.safe_dump(profile, sort_keys=False), encoding="utf-8")
        secrets = {**os.environ, **_DEMO_SECRETS}
        profiles = Profiles(
            destinations_from_document(profile, secrets),
            energy_destinations_from_document(profile, secrets),
        )
        platform = AuthorityPlatform(port=port, log_path=data_dir / RECEIVED_LOG)
        platform.start()
        described = f"hj212 127.0.0.1:{platform.port}, received → {data_dir / RECEIVED_LOG}"
    worker = make_worker(make_engine(database_url), settings, profiles)
    return DemoPush(worker, threading.Event(), platform, described)


_HEADER = (
    "# Written by carbonflow demo: the destinations file of its local HJ 212 platform.\n"
    "# For a real platform: copy it, set host, port, st and codes as agreed with the authority,\n"
    "# export the MN and PW variables it names, and set CARBONFLOW_PUSH_DESTINATIONS to it.\n"
)
