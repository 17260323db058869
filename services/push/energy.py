"""The energy online monitoring sender (能耗在线监测, docs/push.md §3).

Per destination and cycle:

1. **Queue.** For each grain (15 min, day, month) the periods after the destination's cursor
   that the calc service has results for become batches (built and checked by the domain)
   written to ``energy_outbox`` in the transaction that moves the cursor. A batch that fails
   a quality check is ``held`` with its reasons: it is not sent until a reviewer releases it
   through the API (or withdraws it).
2. **Send.** Pending batches, oldest first: an HTTPS POST of the stored bytes with the bearer
   token and the batch id as ``Idempotency-Key``. 2xx: sent. 408, 425, 429, 5xx, a timeout or a
   refused connection: the platform is unavailable — the batch stays pending and the
   destination is retried after a back-off doubling up to a bound. Any other answer: the
   platform refuses the content — ``refused`` with its status and answer, for review.

Every request and answer is audited in ``push_audit`` (``cn`` holds the grain).
"""

from __future__ import annotations

import logging
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from carbonflow.domain.reporting.energy import (
    EnergyDestination,
    Grain,
    batch_digest,
    local_label,
    wire_body,
)
from carbonflow.domain.reporting.profile import (
    FINER,
    PeriodValue,
    due_periods,
    energy_batch,
    period_start_of,
)
from carbonflow.storage import energy_outbox as outbox_db
from carbonflow.storage import push as push_db
from services.push.metrics import PushMetrics

log = logging.getLogger(__name__)

_BATCH = 50
_ANSWER_BYTES = 2000  # of a platform's answer kept with the batch and in the audit
_TRANSIENT = frozenset({408, 425, 429})


@dataclass(frozen=True)
class Answer:
    """What the platform said to one POST: its status (None: no answer) and body."""

    status: int | None
    body: bytes
    error: str | None = None

    @property
    def outcome(self) -> str:
        if self.status is not None and 200 <= self.status < 300:
            return "sent"
        if self.status is None or self.status in _TRANSIENT or self.status >= 500:
            return "pending"
        return "refused"


Post = Callable[[EnergyDestination, str, bytes], Answer]


def http_post(destination: EnergyDestination, batch_id: str, body: bytes) -> Answer:
    """POST ``body`` to the destination; never raises for what the network or platform does."""
    request = urllib.request.Request(
        destination.url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "Authorization": f"Bearer {destination.token}",
            "Idempotency-Key": batch_id,
        },
    )
    context = ssl.create_default_context(cafile=destination.ca_file)
    try:
        # The URL is checked to be http(s) when the profile is read.
        with urllib.request.urlopen(
            request, timeout=destination.timeout_s, context=context
        ) as response:
            return Answer(response.status, response.read(_ANSWER_BYTES))
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.read(_ANSWER_BYTES), f"HTTP {error.code}")
    except (OSError, ValueError) as error:  # refused, reset, timeout, TLS, bad answer
        return Answer(None, b"", f"{type(error).__name__}: {error}"[:300])


@dataclass
class _State:
    backoff_s: float
    retry_at: float = 0.0


def batch_id(destination: str, grain: str, period_start: datetime, tz: str, version: int) -> str:
    """The receiver's de-duplication key of one version of one period's batch."""
    return f"{destination}:{grain}:{local_label(period_start, tz)}:v{version}"


def _new_batch(
    destination: EnergyDestination,
    grain: Grain,
    begin: datetime,
    own: Sequence[PeriodValue],
    finer: Mapping[datetime, Sequence[PeriodValue]],
) -> outbox_db.NewBatch:
    built = energy_batch(destination, grain, begin, own, finer)
    if built.held:
        log.warning(
            "push %s: %s batch of %s held for review: %s",
            destination.name, grain, begin.isoformat(), "; ".join(built.reasons),
        )  # fmt: skip
    key = batch_id(destination.name, str(grain), begin, destination.profile.tz, 1)
    checks = [
        {"rule": c.rule, "item": c.item, "value": c.value, "limit": c.limit,
         "passed": c.passed, "text": c.text}
        for c in built.checks
    ]  # fmt: skip
    return outbox_db.NewBatch(
        str(grain),
        begin,
        wire_body(built, key, 1),
        batch_digest(built),
        checks,
        list(built.reasons),
    )


class EnergySender:
    def __init__(
        self,
        engine: sa.Engine,
        destinations: Sequence[EnergyDestination],
        *,
        periods_per_cycle: int,
        backoff_start_s: float,
        backoff_max_s: float,
        clock: Callable[[], datetime],
        metrics: PushMetrics,
        post: Post = http_post,
    ) -> None:
        self._engine = engine
        self.destinations = tuple(destinations)
        self._periods = periods_per_cycle
        self._backoff = (backoff_start_s, backoff_max_s)
        self._clock = clock
        self._metrics = metrics
        self._post = post
        self._states = {d.name: _State(backoff_start_s) for d in destinations}

    def cycle(self, stop: Callable[[], bool]) -> None:
        for destination in self.destinations:
            if stop():
                return
            try:
                queued = sum(self.queue_due(destination, g) for g in destination.grains)
                self._metrics.queued.labels(destination.name).inc(queued)
                self.send_backlog(destination, stop)
            except sa.exc.SQLAlchemyError as error:
                log.warning(
                    "push %s: database error %s: %s",
                    destination.name,
                    type(error).__name__,
                    str(error).splitlines()[0][:200],
                )

    def retrying(self, name: str) -> bool:
        return self._states[name].retry_at > time.monotonic()

    # --- queue ---------------------------------------------------------------------------

    def queue_due(self, destination: EnergyDestination, grain: Grain) -> int:
        """Queue the due periods of ``grain``; how many batches (held ones included)."""
        tz = destination.profile.tz
        with self._engine.begin() as conn:
            through = push_db.results_through(conn, destination.site_id)
            if through is None:
                return 0
            start = push_db.next_start(
                conn, destination.name, outbox_db.stream(grain)
            ) or period_start_of(str(grain), destination.start or through, tz)
            periods = due_periods(str(grain), start, through, tz, self._periods)
            if not periods:
                return 0
            span = (periods[0][0], periods[-1][1])
            own = push_db.period_values(conn, destination.site_id, str(grain), *span)
            finer_grain = FINER[grain]
            finer = (
                push_db.period_values(conn, destination.site_id, finer_grain, *span)
                if finer_grain
                else {}
            )
            batches = [
                _new_batch(
                    destination,
                    grain,
                    begin,
                    own.get(begin, []),
                    {t: v for t, v in finer.items() if begin <= t < end},
                )
                for begin, end in periods
            ]
            return outbox_db.enqueue(
                conn,
                destination.name,
                destination.site_id,
                str(grain),
                batches,
                periods[-1][1],
                self._clock(),
            )

    # --- send ----------------------------------------------------------------------------

    def send_backlog(self, destination: EnergyDestination, stop: Callable[[], bool]) -> int:
        """POST pending batches until none is left or the platform is unavailable; how many
        the platform accepted."""
        state = self._states[destination.name]
        if time.monotonic() < state.retry_at:
            return 0
        sent = 0
        while not stop():
            with self._engine.connect() as conn:
                rows = outbox_db.sendable(conn, destination.name, _BATCH)
            self._metrics.backlog.labels(destination.name).set(len(rows))
            if not rows:
                break
            for row in rows:
                answer = self._send(destination, row)
                if answer.outcome == "pending":
                    self._unavailable(destination, state, answer)
                    return sent
                sent += answer.outcome == "sent"
        state.backoff_s = self._backoff[0]
        return sent

    def _send(self, destination: EnergyDestination, row: outbox_db.BatchRow) -> Answer:
        key = batch_id(
            destination.name, row.grain, row.period_start, destination.profile.tz, row.version
        )
        answer = self._post(destination, key, row.body)
        self._metrics.sent.labels(destination.name).inc()
        outcome = answer.outcome
        if outcome == "sent":
            self._metrics.acked.labels(destination.name).inc()
        elif outcome == "refused":
            log.error(
                "push %s: %s batch of %s refused (HTTP %s): %s",
                destination.name, row.grain, row.period_start.isoformat(), answer.status,
                answer.body[:200].decode("utf-8", "replace"),
            )  # fmt: skip
        error = None
        if outcome != "sent":
            detail = answer.body[:300].decode("utf-8", "replace")
            error = f"{answer.error or answer.status}: {detail}".strip(": ")
        now = self._clock()
        with self._engine.begin() as conn:
            outbox_db.record_attempt(
                conn, row.outbox_id, now, state=outcome, http_status=answer.status, error=error
            )
            audited = [("sent", row.body, "posted" if answer.status else f"no answer: {error}")]
            if answer.status is not None:
                audited.append(("received", answer.body, f"{outcome} HTTP {answer.status}"))
            for direction, raw, what in audited:
                push_db.write_audit(
                    conn,
                    push_db.AuditEntry(
                        destination.name, now, direction, raw, what[:200], row.outbox_id, key,
                        row.grain,
                    ),
                )  # fmt: skip
        return answer

    def _unavailable(self, destination: EnergyDestination, state: _State, answer: Answer) -> None:
        self._metrics.link_failures.labels(destination.name).inc()
        state.retry_at = time.monotonic() + state.backoff_s
        log.warning(
            "push %s: platform unavailable (%s); retry in %.1f s",
            destination.name,
            answer.error or answer.status,
            state.backoff_s,
        )
        state.backoff_s = min(state.backoff_s * 2, self._backoff[1])
