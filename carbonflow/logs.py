"""Logging set-up for the entry points: plain text for people, JSON lines for collectors; and
:class:`LogOnce`, for problems that recur with every message or cycle."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Hashable
from datetime import UTC, datetime
from typing import Literal

_STANDARD = frozenset(vars(logging.makeLogRecord({})))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and any ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value if isinstance(value, str | int | float | bool) else repr(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Alembic and paho are chatty at INFO.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))


class LogOnce:
    """Log a problem once per key (a site and a reason, say), not once per message or cycle.

    At most ``capacity`` keys are remembered. A new key past that either clears the memory and
    is logged (``when_full="forget"``: a long-running process logs a lasting problem again now
    and then) or is not logged at all (``"stop"``: a flood of distinct keys stays quiet).
    """

    def __init__(
        self,
        logger: logging.Logger,
        *,
        capacity: int = 10_000,
        when_full: Literal["forget", "stop"] = "forget",
    ) -> None:
        self._log = logger
        self._capacity = capacity
        self._forget = when_full == "forget"
        self._seen: set[Hashable] = set()

    def __call__(self, key: Hashable, message: str, *args: object, exc_info: bool = False) -> None:
        """``logger.warning(message, *args)`` unless ``key`` was logged already."""
        if key in self._seen:
            return
        if len(self._seen) >= self._capacity:
            if not self._forget:
                return
            self._seen.clear()
        self._seen.add(key)
        self._log.warning(message, *args, exc_info=exc_info)
