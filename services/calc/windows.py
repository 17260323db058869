"""The calc cycle's time grain and range type; the calendar arithmetic is the domain's
(:mod:`carbonflow.domain.calendar`)."""

from __future__ import annotations

from datetime import datetime, timedelta

from carbonflow.domain.readings.intervals import ACCOUNTING_INTERVAL

#: A [start, end) range in UTC.
Range = tuple[datetime, datetime]

SLOT = ACCOUNTING_INTERVAL
HOUR = timedelta(hours=1)
