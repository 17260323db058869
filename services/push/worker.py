"""The push worker: queue what is due, send the backlog, wait for each answer (docs/push.md).

Per destination and cycle:

1. **Queue.** For each data command (2051, 2061, 2031) the periods after the destination's
   cursor that the calc service has results for become packets (built by the domain, framed,
   encrypted under 2025) written to ``push_outbox`` in the transaction that moves the cursor.
2. **Send.** The pending packets, oldest first, one at a time: send the stored bytes, wait up
   to OverTime for the 9014 echoing its QN, resend the same bytes up to ReCount times. An
   answer marks the packet acked — it is never sent again. No answer after ReCount resends, a
   refused or lost connection: the link is down, the packet stays pending, and the destination
   is retried after a back-off doubling up to a bound. Nothing is dropped.
3. **Listen.** While waiting, a platform request for history (2031/2051/2061 with
   BeginTime/EndTime) is answered 9011, the stored data (new QNs), 9012.

Every packet sent or received is audited with its raw bytes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from carbonflow.domain.reporting.hj212 import Hj212Error, Packet, frame, known_cns, next_qn, parse
from carbonflow.domain.reporting.hj212_2025 import (
    HEARTBEAT_CN,
    encrypts,
    heartbeat,
    sm4_decode_cp,
    sm4_encode_cp,
)
from carbonflow.domain.reporting.hj212_flow import (
    ExeRtn,
    HistoryRequest,
    QnRtn,
    answers_qn,
    data_packets,
    execution_result,
    history_request,
    packet_count,
    request_answer,
)
from carbonflow.domain.reporting.profile import (
    CN_GRAINS,
    Destination,
    PeriodValue,
    due_periods,
    period_end,
    period_start_of,
    upload_cp,
    values_digest,
)
from carbonflow.domain.units import UnitError
from carbonflow.storage import push as push_db
from services.push.energy import EnergySender
from services.push.link import Link
from services.push.metrics import PushMetrics

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Connect = Callable[[Destination], Link]
_BACKLOG_BATCH = 100
# The span of a period when looking for results recomputed inside it (a local day of a zone
# with DST may be 23 or 25 h: an hour more or less is compared, found equal, left alone).
_PERIODS = {"15min": timedelta(minutes=15), "hour": timedelta(hours=1), "day": timedelta(days=1)}
_LISTEN_S = 0.01
"""How long an idle connection is read for requests each cycle [s]."""


def utc_now() -> datetime:
    return datetime.now(UTC)


class LinkDownError(Exception):
    """The platform is unreachable or does not answer: back off, keep the backlog."""


@dataclass
class _LinkState:
    link: Link | None = None
    backoff_s: float = 0.0
    retry_at: float = 0.0
    last_qn: str | None = None
    last_sent: float = 0.0  # monotonic time of the last packet sent [s]
    problems: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class WorkerConfig:
    interval_s: float = 5.0
    backoff_start_s: float = 1.0
    backoff_max_s: float = 60.0
    connect_timeout_s: float = 10.0
    periods_per_cycle: int = 200
    # how far back from the newest queued period recomputed results queue a new version [d]
    revise_days: float = 35.0


class PushWorker:
    def __init__(
        self,
        engine: sa.Engine,
        destinations: Sequence[Destination],
        config: WorkerConfig,
        *,
        clock: Clock = utc_now,
        connect: Connect | None = None,
        metrics: PushMetrics | None = None,
        energy: EnergySender | None = None,
    ) -> None:
        self._energy = energy
        self._engine = engine
        self._destinations = tuple(destinations)
        self._config = config
        self._clock = clock
        self._connect = connect or (lambda d: Link.open(d.host, d.port, config.connect_timeout_s))
        self.metrics = metrics or PushMetrics()
        self._states = {d.name: _LinkState(backoff_s=config.backoff_start_s) for d in destinations}
        self._stop = threading.Event()
        self._db_ok: bool | None = None  # None: not asked yet (no destination, no cycle)
        self._alive_at: float | None = None  # monotonic time of the last progress [s]

    # --- the loop ------------------------------------------------------------------------

    def run(self, stop: threading.Event | None = None) -> None:
        """Cycle until ``stop`` is set; database outages are logged and retried."""
        self._stop = stop or self._stop
        log.info("push worker started: %s", ", ".join(d.name for d in self._destinations))
        while not self._stop.is_set():
            self.cycle()
            self._stop.wait(self._config.interval_s)
        self.close()
        log.info("push worker stopped")

    def health(self) -> dict[str, Any]:
        """For ``/healthz``: ok while cycles go on (a cycle or a packet within 10 intervals,
        at least 60 s) and the database answered; with no destination the worker idles, ok."""
        now = time.monotonic()
        age = None if self._alive_at is None else round(now - self._alive_at, 3)
        stale_after = max(10 * self._config.interval_s, 60.0)
        links = {
            d.name: "retrying" if self._states[d.name].retry_at > now else "up"
            for d in self._destinations
        }
        if self._energy is not None:
            for e in self._energy.destinations:
                links[e.name] = "retrying" if self._energy.retrying(e.name) else "up"
        return {
            "ok": self._db_ok is not False and age is not None and age <= stale_after,
            "status": "pushing" if links else "idle: no destinations configured",
            "database_ok": self._db_ok,
            "seconds_since_last_cycle": age,
            "destinations": links,
        }

    def cycle(self) -> None:
        self._alive_at = time.monotonic()
        for destination in self._destinations:
            if self._stop.is_set():
                return
            try:
                queued = self.queue_due(destination) + self.queue_revisions(destination)
                self.metrics.queued.labels(destination.name).inc(queued)
                self.send_backlog(destination)
                self._db_ok = True
            except sa.exc.SQLAlchemyError as error:
                self._db_ok = False
                log.warning(
                    "push %s: database error %s: %s",
                    destination.name,
                    type(error).__name__,
                    str(error).splitlines()[0][:200],
                )
        if self._energy is not None:
            self._energy.cycle(self._stop.is_set)

    def close(self) -> None:
        for state in self._states.values():
            if state.link is not None:
                state.link.close()
                state.link = None

    # --- queue ---------------------------------------------------------------------------

    def queue_due(self, destination: Destination) -> int:
        """Queue the due periods of every data command of ``destination``; how many packets."""
        return self._each_command(destination, self._queue_command)

    def queue_revisions(self, destination: Destination) -> int:
        """Queue a new version of each already queued period whose values changed since (late
        data recomputed by calc); how many packets."""
        return self._each_command(destination, self._revise_command)

    def _each_command(
        self, destination: Destination, queue: Callable[[Destination, str], int]
    ) -> int:
        """A stored unit the profile's unit cannot take (``activity:heat`` in GJ sent as kWh)
        queues nothing and moves no cursor: the profile must be corrected."""
        queued = 0
        for cn in destination.cns:
            try:
                queued += queue(destination, cn)
            except UnitError as error:
                self._log_once(destination, f"profile unit: {error}")
        return queued

    def _revise_command(self, destination: Destination, cn: str) -> int:
        grain, tz, now = CN_GRAINS[cn], destination.tz, self._clock()
        with self._engine.begin() as conn:
            due = push_db.revisable(
                conn,
                destination.name,
                destination.site_id,
                cn,
                _PERIODS[grain],
                timedelta(days=self._config.revise_days),
                self._config.periods_per_cycle,
            )
            if not due:
                return 0
            values = push_db.period_values(
                conn,
                destination.site_id,
                grain,
                due[0].data_time,
                period_end(grain, due[-1].data_time, tz),
            )
            state = self._states[destination.name]
            state.last_qn = max(state.last_qn or "", push_db.last_qn(conn, destination.name) or "")
            packets: list[push_db.NewPacket] = []
            for r in due:
                period_values = values.get(r.data_time, [])
                digest = values_digest(upload_cp(destination, r.data_time, period_values))
                if r.values_digest in (None, digest):
                    push_db.mark_compared(
                        conn, destination.name, cn, r.data_time, r.version, digest, now
                    )
                    continue
                log.info(
                    "push %s: CN %s %s changed after late data: version %d queued",
                    destination.name, cn, r.data_time.isoformat(), r.version + 1,
                )  # fmt: skip
                packets += self._build(
                    destination, cn, r.data_time, period_values, state, r.version + 1
                )
            return push_db.insert_packets(conn, destination.name, destination.site_id, packets, now)

    def _log_once(self, destination: Destination, problem: str) -> None:
        state = self._states[destination.name]
        if problem not in state.problems:
            state.problems.add(problem)
            log.error("push %s: %s; nothing queued until corrected", destination.name, problem)

    def _queue_command(self, destination: Destination, cn: str) -> int:
        grain, tz = CN_GRAINS[cn], destination.tz
        with self._engine.begin() as conn:
            through = push_db.results_through(conn, destination.site_id)
            if through is None:
                return 0
            start = push_db.next_start(conn, destination.name, cn) or period_start_of(
                grain, destination.start or through, tz
            )
            periods = due_periods(grain, start, through, tz, self._config.periods_per_cycle)
            if not periods:
                return 0
            values = push_db.period_values(
                conn, destination.site_id, grain, periods[0][0], periods[-1][1]
            )
            state = self._states[destination.name]
            state.last_qn = max(state.last_qn or "", push_db.last_qn(conn, destination.name) or "")
            packets = [
                p
                for begin, _ in periods
                for p in self._build(destination, cn, begin, values.get(begin, []), state)
            ]
            return push_db.enqueue(
                conn,
                destination.name,
                destination.site_id,
                cn,
                packets,
                periods[-1][1],
                self._clock(),
            )

    def _qns(self, state: _LinkState, count: int) -> list[str]:
        qns = []
        for _ in range(count):
            state.last_qn = next_qn(self._clock(), state.last_qn or None)
            qns.append(state.last_qn)
        return qns

    def _encoder(self, destination: Destination, cn: str) -> Callable[[str], str] | None:
        if destination.sm4_key is not None and encrypts(destination.version, cn):
            return sm4_encode_cp(destination.sm4_key)
        return None

    def _wire(self, destination: Destination, packet: Packet) -> bytes:
        return frame(packet.segment(self._encoder(destination, packet.cn)))

    def _build(
        self,
        destination: Destination,
        cn: str,
        begin: datetime,
        values: Sequence[PeriodValue],
        state: _LinkState,
        version: int = 1,
    ) -> list[push_db.NewPacket]:
        cp = upload_cp(destination, begin, values)
        digest = values_digest(cp)
        identity = replace(destination.identity, encode_cp=self._encoder(destination, cn))
        qns = self._qns(state, packet_count(identity, cn, cp))
        return [
            push_db.NewPacket(
                cn,
                begin,
                p.pno or 1,
                p.pnum or 1,
                p.qn or "",
                self._wire(destination, p),
                version,
                digest,
            )
            for p in data_packets(identity, cn, cp, qns)
        ]

    def _audit(
        self,
        conn: sa.Connection,
        destination: Destination,
        direction: str,
        raw: bytes,
        outcome: str,
        **where: str | int | None,
    ) -> None:
        entry = push_db.AuditEntry(destination.name, self._clock(), direction, raw, outcome)
        push_db.write_audit(conn, replace(entry, **where))  # type: ignore[arg-type]

    # --- send ----------------------------------------------------------------------------

    def send_backlog(self, destination: Destination) -> int:
        """Send pending packets until the backlog is empty or the link fails; how many acked."""
        state = self._states[destination.name]
        if time.monotonic() < state.retry_at:
            return 0
        try:
            acked = self._drain(destination, state)
            self._heartbeat(destination, state)
            self._listen(destination, state)
        except (OSError, LinkDownError) as error:
            self._link_down(destination, state, error)
            return 0
        state.backoff_s = self._config.backoff_start_s
        return acked

    def _drain(self, destination: Destination, state: _LinkState) -> int:
        acked = 0
        while not self._stop.is_set():
            with self._engine.connect() as conn:
                rows = push_db.pending(conn, destination.name, _BACKLOG_BATCH)
            self.metrics.backlog.labels(destination.name).set(len(rows))
            if not rows:
                break
            if state.link is None:
                state.link = self._connect(destination)
                log.info("push %s: connected", destination.name)
            for row in rows:
                if self._stop.is_set():
                    break
                self._deliver(destination, state.link, row)
                self._alive_at = time.monotonic()
                acked += 1
        return acked

    def _heartbeat(self, destination: Destination, state: _LinkState) -> None:
        """HJ 212-2025 (reported): a 9015 when nothing was sent for ``heartbeat_s``."""
        interval = destination.heartbeat_s
        if interval is None or time.monotonic() - state.last_sent < interval:
            return
        if state.link is None:
            state.link = self._connect(destination)
            log.info("push %s: connected", destination.name)
        identity = destination.identity
        (qn,) = self._qns(state, 1)
        wire = frame(heartbeat(qn, identity.st, identity.pw, identity.mn).segment())
        state.link.send(wire)
        state.last_sent = time.monotonic()
        with self._engine.begin() as conn:
            self._audit(conn, destination, "sent", wire, "heartbeat", qn=qn, cn=HEARTBEAT_CN)

    def _listen(self, destination: Destination, state: _LinkState) -> None:
        """Serve what the platform sent while we had nothing to send (history requests)."""
        if state.link is None:
            return
        while (raw := state.link.receive(_LISTEN_S)) is not None:
            packet = self._parse(destination, raw)
            if packet is not None:
                self._other(destination, state.link, packet, raw)

    def _link_down(self, destination: Destination, state: _LinkState, error: Exception) -> None:
        self.metrics.link_failures.labels(destination.name).inc()
        if state.link is not None:
            state.link.close()
            state.link = None
        state.retry_at = time.monotonic() + state.backoff_s
        log.warning(
            "push %s: link down (%s); retry in %.1f s",
            destination.name,
            error,
            state.backoff_s,
        )
        state.backoff_s = min(state.backoff_s * 2, self._config.backoff_max_s)

    def _deliver(self, destination: Destination, link: Link, row: push_db.OutboxRow) -> None:
        sends = 1 + destination.recount
        for attempt in range(sends):
            link.send(row.packet)
            self._states[destination.name].last_sent = time.monotonic()
            self.metrics.sent.labels(destination.name).inc()
            with self._engine.begin() as conn:
                push_db.mark_sent(conn, row.outbox_id, self._clock())
                self._audit(
                    conn, destination, "sent", row.packet,
                    "sent" if attempt == 0 and row.attempts == 0 else "resent",
                    outbox_id=row.outbox_id, qn=row.qn, cn=row.cn,
                )  # fmt: skip
            if self._await_answer(destination, link, row):
                self.metrics.acked.labels(destination.name).inc()
                return
        with self._engine.begin() as conn:
            push_db.mark_failed(conn, row.outbox_id, f"no answer to {sends} sends")
        raise LinkDownError(f"no answer to QN {row.qn} after {sends} sends")

    def _await_answer(self, destination: Destination, link: Link, row: push_db.OutboxRow) -> bool:
        deadline = time.monotonic() + destination.overtime_s
        while (remaining := deadline - time.monotonic()) > 0:
            raw = link.receive(remaining)
            if raw is None:
                return False
            packet = self._parse(destination, raw)
            if packet is None:
                continue
            if answers_qn(packet, row.qn):
                with self._engine.begin() as conn:
                    push_db.mark_acked(conn, row.outbox_id, self._clock())
                    self._audit(
                        conn, destination, "received", raw, "answer",
                        outbox_id=row.outbox_id, qn=packet.qn, cn=packet.cn,
                    )  # fmt: skip
                return True
            self._other(destination, link, packet, raw)
        return False

    def _parse(self, destination: Destination, raw: bytes) -> Packet | None:
        decode = sm4_decode_cp(destination.sm4_key) if destination.sm4_key else None
        try:
            return parse(raw, cns=known_cns(destination.version), decode_cp=decode)
        except Hj212Error as error:
            self.metrics.invalid_received.labels(destination.name).inc()
            with self._engine.begin() as conn:
                self._audit(conn, destination, "received", raw, str(error.reason))
            return None

    def _other(self, destination: Destination, link: Link, packet: Packet, raw: bytes) -> None:
        """A packet that is not the awaited answer: a history request is served, anything else
        (a late answer to an earlier send, a command we do not support) is audited."""
        try:
            history = history_request(packet, destination.tz)
            outcome = "history request" if history else "unmatched"
        except Hj212Error as error:  # a request we cannot read is refused, not fatal
            history, outcome = None, f"refused request: {error.reason}"
        with self._engine.begin() as conn:
            self._audit(conn, destination, "received", raw, outcome, qn=packet.qn, cn=packet.cn)
        if history is not None:
            self._serve_history(destination, link, packet, history)
        elif outcome.startswith("refused"):
            self._send_replies(
                destination, link, [request_answer(packet, destination.identity, QnRtn.REJECTED)]
            )

    def _serve_history(
        self, destination: Destination, link: Link, request: Packet, history: HistoryRequest
    ) -> None:
        """9011, the stored periods of the request (new QNs, no answer awaited), 9012."""
        identity = destination.identity
        supported = history.cn in CN_GRAINS
        replies = [request_answer(request, identity, QnRtn.READY if supported else QnRtn.CN_ERROR)]
        found = 0
        if supported:
            grain = CN_GRAINS[history.cn]
            start = period_start_of(grain, history.begin, destination.tz)
            periods = due_periods(grain, start, history.end, destination.tz, 10_000)
            periods = [p for p in periods if history.begin <= p[0] <= history.end]
            if periods:
                with self._engine.connect() as conn:
                    values = push_db.period_values(
                        conn, destination.site_id, grain, periods[0][0], periods[-1][1]
                    )
                state = self._states[destination.name]
                for begin, _ in periods:
                    if begin not in values:
                        continue
                    found += 1
                    cp = upload_cp(destination, begin, values[begin])
                    sized = replace(identity, encode_cp=self._encoder(destination, history.cn))
                    qns = self._qns(state, packet_count(sized, history.cn, cp))
                    replies.extend(data_packets(sized, history.cn, cp, qns, answer=False))
            code = ExeRtn.SUCCESS if found else ExeRtn.NO_DATA
            replies.append(execution_result(request, identity, code))
        self._send_replies(destination, link, replies)

    def _send_replies(self, destination: Destination, link: Link, replies: list[Packet]) -> None:
        for reply in replies:
            wire = self._wire(destination, reply)
            link.send(wire)
            self._states[destination.name].last_sent = time.monotonic()
            with self._engine.begin() as conn:
                self._audit(
                    conn, destination, "sent", wire, "history reply", qn=reply.qn, cn=reply.cn
                )
