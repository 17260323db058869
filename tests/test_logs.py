from __future__ import annotations

import json
import logging

from carbonflow.logs import JsonFormatter


def test_json_log_lines_carry_message_level_and_extra_fields() -> None:
    record = logging.makeLogRecord(
        {
            "name": "services.ingest",
            "levelname": "WARNING",
            "msg": "rejecting %s",
            "args": ("x",),
            "device": "hoist-1",
        }
    )
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "rejecting x"
    assert entry["level"] == "WARNING" and entry["logger"] == "services.ingest"
    assert entry["device"] == "hoist-1" and entry["ts"].endswith("+00:00")
