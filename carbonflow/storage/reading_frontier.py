"""Where a site's stored readings end: the newest reading time and each counter's last register.

``carbonflow demo`` resumes its simulators from here on a restart, so the back-fill covers only
the span with no data and the simulated registers go on from the stored values instead of
starting again (which would read as a counter reset and replay every reading as a conflict).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa

# One backward scan of the reading primary key (device_pk, metric_id, ts) per device metric.
_LAST_READINGS = sa.text(
    """
    SELECT d.device_id, m.name, dm.kind, r.ts, r.value
    FROM device d
    JOIN device_metric dm ON dm.device_pk = d.device_pk
    JOIN metric m ON m.metric_id = dm.metric_id
    CROSS JOIN LATERAL (
        SELECT ts, value FROM reading
        WHERE reading.device_pk = d.device_pk AND reading.metric_id = dm.metric_id
        ORDER BY ts DESC LIMIT 1
    ) r
    WHERE d.site_id = :site_id AND d.active
    """
)


@dataclass(frozen=True, slots=True)
class SiteFrontier:
    """The newest stored reading of a site's active devices, and their counters' last values."""

    last_ts: datetime | None  # None: the site has no reading yet
    # device id → counter metric → its newest stored value (canonical unit, before the multiplier)
    registers: dict[str, dict[str, float]] = field(default_factory=dict)


def site_frontier(conn: sa.Connection, site_id: str) -> SiteFrontier:
    """Where the stored readings of ``site_id`` end."""
    last: datetime | None = None
    registers: dict[str, dict[str, float]] = {}
    for device_id, metric_name, kind, ts, value in conn.execute(
        _LAST_READINGS, {"site_id": site_id}
    ):
        last = ts if last is None or ts > last else last
        if kind == "counter":
            registers.setdefault(device_id, {})[metric_name] = float(value)
    return SiteFrontier(last, registers)
