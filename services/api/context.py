"""Everything a request needs, built once by ``create_app`` and kept on ``app.state.api``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

import anyio
import sqlalchemy as sa

from services.api.auth import Authenticator
from services.api.metrics import ApiMetrics
from services.api.ratelimit import FailedAuthThrottle, RateLimiter
from services.api.settings import ApiSettings


@dataclass
class ApiContext:
    settings: ApiSettings
    engine: sa.Engine
    metrics: ApiMetrics
    authenticator: Authenticator
    limiter: RateLimiter
    failed_auth: FailedAuthThrottle
    wall_clock: Callable[[], datetime]  # tz-aware UTC
    expected_revision: str | None  # the newest migration this code knows
    # The live stream waits with this between snapshots; tests may make it return at once.
    stream_sleep: Callable[[float], Awaitable[None]] = field(repr=False, default=anyio.sleep)
    open_streams: int = 0
