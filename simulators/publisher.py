"""The simulators' MQTT publisher: the one module of the simulators that imports paho.

Publishes QoS 1 with a moderate in-flight window (see ``MAX_INFLIGHT``: paho's cost per
acknowledgement grows with it), and waits until the broker has acknowledged every message.
:class:`Publisher` publishes a list and waits; :class:`StreamPublisher` publishes a stream.

Both ride out a broker restart as a device must: paho's network thread reconnects (after
``RECONNECT_MIN_DELAY_S``, doubling up to ``RECONNECT_MAX_DELAY_S``), messages published while
disconnected are kept, and every message not yet acknowledged is sent again (DUP) on the new
connection. A message counts as delivered only on its PUBACK, never on the return code of
``publish`` (which says "no connection" while the broker is away).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from carbonflow.settings import MqttTarget

# Message ids are 16-bit: never have more than this many messages outstanding at once.
_CHUNK = 20_000
# Messages paho keeps in flight (sent, not yet acknowledged). paho walks its in-flight table on
# every PUBACK to find the next queued message, so the cost per message grows with this: 100
# publishes ~3.5× faster than 2,000 on a local broker (~24,000 vs ~7,000 msgs/s, QoS 1) and is
# still plenty to cover the round trip.
MAX_INFLIGHT = 100
# Messages the stream publisher lets paho hold (in flight + queued) before send() waits.
STREAM_WINDOW = 1000
RECONNECT_MIN_DELAY_S = 1
RECONNECT_MAX_DELAY_S = 2


class PublishError(RuntimeError):
    pass


class Publisher:
    def __init__(
        self, mqtt_url: str, client_id: str = "", *, max_inflight: int = MAX_INFLIGHT
    ) -> None:
        target = MqttTarget.parse(mqtt_url)
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
        )
        if target.username:
            password = target.password.get_secret_value() if target.password else None
            self._client.username_pw_set(target.username, password)
        if target.tls:
            self._client.tls_set()
        self._client.max_inflight_messages_set(max_inflight)
        self._client.max_queued_messages_set(0)
        self._client.reconnect_delay_set(RECONNECT_MIN_DELAY_S, RECONNECT_MAX_DELAY_S)
        self._connected = threading.Event()
        self._client.on_connect = lambda *_args: self._connected.set()
        self._client.on_publish = self._on_publish
        self._acked_cond = threading.Condition()
        self._acked_mids: set[int] = set()
        self._target = target
        self.published = 0

    def _on_publish(self, _client: object, _userdata: object, mid: int, *_rest: object) -> None:
        with self._acked_cond:
            self._acked_mids.add(mid)
            self._acked_cond.notify_all()

    def __enter__(self) -> Publisher:
        self.connect()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def connect(self, timeout_s: float = 10.0) -> None:
        self._client.connect(self._target.host, self._target.port, keepalive=30)
        self._client.loop_start()
        if not self._connected.wait(timeout_s):
            raise PublishError(f"no CONNACK from {self._target.host}:{self._target.port}")

    def publish_many(
        self, messages: Iterable[tuple[str, bytes]], *, qos: int = 1, timeout_s: float = 300.0
    ) -> int:
        """Publish every (topic, payload) and wait for the broker's acknowledgements."""
        deadline = time.monotonic() + timeout_s
        sent = 0
        chunk: list[tuple[str, bytes]] = []
        for message in messages:
            chunk.append(message)
            if len(chunk) >= _CHUNK:
                sent += self._publish_chunk(chunk, qos, deadline)
                chunk = []
        if chunk:
            sent += self._publish_chunk(chunk, qos, deadline)
        return sent

    def _publish_chunk(self, chunk: list[tuple[str, bytes]], qos: int, deadline: float) -> int:
        if qos == 0:
            for topic, payload in chunk:
                self._client.publish(topic, payload, qos=0)
            self.published += len(chunk)
            return len(chunk)
        with self._acked_cond:
            self._acked_mids.clear()
        # A message published while the broker is away is kept by paho and sent on reconnect.
        pending = {self._client.publish(topic, payload, qos=qos).mid for topic, payload in chunk}
        with self._acked_cond:
            while True:
                pending -= self._acked_mids
                self._acked_mids.clear()
                if not pending:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise PublishError(
                        f"timed out waiting for PUBACKs ({len(pending)} unacknowledged)"
                    )
                self._acked_cond.wait(min(remaining, 1.0))
        self.published += len(chunk)
        return len(chunk)

    def publish(self, topic: str, payload: bytes, *, qos: int = 1) -> None:
        self.publish_many([(topic, payload)], qos=qos)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


class StreamPublisher:
    """Publishes a long stream at QoS 1 with at most ``window`` messages unacknowledged.

    :meth:`send` returns as soon as paho has the message (it blocks only while the window is
    full); :meth:`flush` waits for the broker's acknowledgement of everything sent. The window
    stays below the 16-bit message-id space. The PUBACK callback only counts.
    """

    def __init__(
        self,
        mqtt_url: str,
        client_id: str = "",
        *,
        window: int = STREAM_WINDOW,
        max_inflight: int = MAX_INFLIGHT,
        stall_timeout_s: float = 120.0,
    ) -> None:
        if not 1 <= window < 65535:
            raise ValueError("window must be between 1 and 65534 messages")
        target = MqttTarget.parse(mqtt_url)
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
        )
        if target.username:
            password = target.password.get_secret_value() if target.password else None
            self._client.username_pw_set(target.username, password)
        if target.tls:
            self._client.tls_set()
        self._client.max_inflight_messages_set(max_inflight)
        self._client.max_queued_messages_set(0)
        self._client.reconnect_delay_set(RECONNECT_MIN_DELAY_S, RECONNECT_MAX_DELAY_S)
        self._connected = threading.Event()
        self._client.on_connect = lambda *_args: self._connected.set()
        self._client.on_publish = self._on_publish
        self._target = target
        self._window = window
        self._stall_timeout_s = stall_timeout_s
        self._acked_cond = threading.Condition()
        self._waiting = False
        self.sent = 0
        self.acked = 0
        self.bytes_sent = 0

    def _on_publish(self, *_args: object) -> None:
        with self._acked_cond:
            self.acked += 1
            if self._waiting:
                self._acked_cond.notify_all()

    def __enter__(self) -> StreamPublisher:
        self.connect()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def connect(self, timeout_s: float = 10.0) -> None:
        self._client.connect(self._target.host, self._target.port, keepalive=30)
        self._client.loop_start()
        if not self._connected.wait(timeout_s):
            self._client.loop_stop()
            raise PublishError(f"no CONNACK from {self._target.host}:{self._target.port}")

    def send(self, topic: str, payload: bytes) -> None:
        """Publish one message at QoS 1; waits while ``window`` messages are unacknowledged."""
        if self.sent - self.acked >= self._window:
            self._wait_for(lambda: self.sent - self.acked < self._window)
        self._client.publish(topic, payload, qos=1)
        self.sent += 1
        self.bytes_sent += len(payload)

    def flush(self, timeout_s: float = 300.0) -> None:
        """Wait until the broker has acknowledged every message sent."""
        self._wait_for(lambda: self.acked >= self.sent, timeout_s)

    def _wait_for(self, done: Callable[[], bool], timeout_s: float | None = None) -> None:
        stall = self._stall_timeout_s if timeout_s is None else timeout_s
        with self._acked_cond:
            self._waiting = True
            try:
                last, deadline = self.acked, time.monotonic() + stall
                while not done():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise PublishError(
                            f"no PUBACK progress for {stall:g} s "
                            f"({self.sent - self.acked} unacknowledged)"
                        )
                    self._acked_cond.wait(min(remaining, 1.0))
                    if self.acked != last:  # progress: restart the stall clock
                        last, deadline = self.acked, time.monotonic() + stall
            finally:
                self._waiting = False

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
