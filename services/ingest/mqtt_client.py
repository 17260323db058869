"""The MQTT adapter: the only module in carbonflow that imports paho.

Its callbacks decode a message into a frozen :class:`InboundMessage` and hand it to a sink; they
never do business logic and never raise into paho's thread. Acknowledgements are manual: the
service acks a message only after the transaction holding it has committed.

Each broker connection has a generation number. A message is acked only on the connection that
delivered it: after a reconnect the broker redelivers whatever was not acked, and the
idempotent readings table absorbs the second copy.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from carbonflow.settings import MqttSettings
from services.ingest.messages import InboundMessage

log = logging.getLogger(__name__)

KEEPALIVE_S = 30
RECONNECT_MIN_DELAY_S = 1
"""First reconnect attempt after the connection is lost [s] (paho takes whole seconds)."""
RECONNECT_MAX_DELAY_S = 2
"""Bound on the doubling reconnect back-off [s]: a broker that is back is found within this."""


class MqttSubscriber:
    def __init__(
        self,
        settings: MqttSettings,
        *,
        client_id: str,
        topic_filters: Sequence[str],
        session_expiry_s: int,
        receive_maximum: int,
        sink: Callable[[InboundMessage], None],
        on_connection_change: Callable[[bool], None] = lambda _connected: None,
        retire: bool = False,
    ) -> None:
        self._target = settings.target()
        self._topic_filters = list(topic_filters)
        self._sink = sink
        self._on_connection_change = on_connection_change
        self._lock = threading.Lock()
        self._generation = 0
        self._connected = False
        self._subscribed = False
        self._retire = retire
        self._stopping = False
        self.unsubscribed = threading.Event()
        self._session_expiry_s = session_expiry_s
        self._receive_maximum = receive_maximum
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        if self._target.username:
            password = self._target.password.get_secret_value() if self._target.password else None
            client.username_pw_set(self._target.username, password)
        if self._target.tls:
            client.tls_set(
                ca_certs=str(settings.mqtt_ca_file) if settings.mqtt_ca_file else None,
                certfile=str(settings.mqtt_cert_file) if settings.mqtt_cert_file else None,
                keyfile=str(settings.mqtt_key_file) if settings.mqtt_key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
            client.tls_insecure_set(settings.mqtt_tls_insecure)
        # Reconnect fast after a broker restart: every second the worker is away is a second in
        # which a shared subscription has no member (docs/mqtt.md, "Delivery guarantees").
        client.reconnect_delay_set(min_delay=RECONNECT_MIN_DELAY_S, max_delay=RECONNECT_MAX_DELAY_S)
        # Outgoing queue for acks is unbounded in paho; inbound flow control is Receive Maximum.
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_unsubscribe = self._on_unsubscribe
        self._client = client

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def subscribed(self) -> bool:
        """Connected and the broker has granted the subscription."""
        return self._connected and self._subscribed

    @property
    def generation(self) -> int:
        return self._generation

    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self._session_expiry_s
        props.ReceiveMaximum = self._receive_maximum
        self._client.connect_async(
            self._target.host,
            self._target.port,
            keepalive=KEEPALIVE_S,
            clean_start=False,
            properties=props,
        )
        self._client.loop_start()

    def ack(self, messages: Sequence[InboundMessage]) -> int:
        """Acknowledge committed messages delivered on the current connection; returns how many."""
        acked = 0
        with self._lock:
            generation = self._generation
            if not self._connected:
                return 0
            for m in messages:
                if m.qos > 0 and m.generation == generation:
                    self._client.ack(m.mid, m.qos)
                    acked += 1
        return acked

    def stop(self, *, end_session: bool = False) -> None:
        """Disconnect cleanly (acks already queued are sent first) and stop the network thread.

        ``end_session``: tell the broker to discard this client's session now, so that it stops
        queueing this worker's share of a shared subscription (a worker being retired).
        """
        self._stopping = True
        try:
            if end_session:
                props = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
                props.SessionExpiryInterval = 0
                self._client.disconnect(properties=props)
            else:
                self._client.disconnect()
        finally:
            self._client.loop_stop()

    # ---- paho callbacks: decode, hand over, never raise ------------------------------------

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, flags: Any, reason: Any, _props: Any
    ) -> None:
        try:
            if reason.is_failure:
                log.error("broker refused the connection: %s", reason)
                return
            with self._lock:
                self._generation += 1
                self._connected = True
            log.info(
                "connected to %s:%s (session present: %s); subscribing to %s",
                self._target.host,
                self._target.port,
                flags.session_present,
                ", ".join(self._topic_filters),
            )
            # Always (re)subscribe, whatever session_present says: Mosquitto restores a
            # persistent session after a restart but not its shared subscriptions, and a broker
            # may have lost the session altogether. Subscribing again to a filter the session
            # already has is harmless.
            if self._retire:
                # Take no new share of the stream; what the session already holds still comes.
                client.unsubscribe(self._topic_filters)
            else:
                client.subscribe([(f, 1) for f in self._topic_filters])
            self._on_connection_change(True)
        except Exception:
            log.exception("error in on_connect")

    def _on_subscribe(
        self, _client: mqtt.Client, _userdata: Any, _mid: int, reasons: Any, _props: Any
    ) -> None:
        refused = [r for r in reasons if r.is_failure]
        for reason in refused:
            log.error("subscription to %s refused: %s", ", ".join(self._topic_filters), reason)
        self._subscribed = not refused

    def _on_unsubscribe(
        self, _client: mqtt.Client, _userdata: Any, _mid: int, _reasons: Any, _props: Any
    ) -> None:
        log.info(
            "unsubscribed from %s: retiring this worker's session", ", ".join(self._topic_filters)
        )
        self.unsubscribed.set()

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        try:
            with self._lock:
                self._generation += 1
                self._connected = False
                self._subscribed = False
            if self._stopping:
                log.info("disconnected from the broker")
            else:
                log.warning("disconnected from the broker (%s); reconnecting with backoff", reason)
            self._on_connection_change(False)
        except Exception:
            log.exception("error in on_disconnect")

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            try:
                topic = message.topic
            except UnicodeDecodeError:
                topic = bytes(message._topic).decode("utf-8", errors="backslashreplace")
            self._sink(
                InboundMessage(
                    topic=topic,
                    payload=bytes(message.payload),
                    mid=message.mid,
                    qos=message.qos,
                    received_at=datetime.now(UTC),
                    generation=self._generation,
                )
            )
        except Exception:
            # Not acked: the broker redelivers it after the next reconnect.
            log.exception("could not hand over a message on %r", getattr(message, "topic", "?"))
