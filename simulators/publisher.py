"""The simulators' MQTT publisher: the one module of the simulators that imports paho.

Publishes QoS 1 with a deep in-flight window so that a single Python process is not the
bottleneck of a load test, and waits until the broker has acknowledged every message.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from carbonflow.settings import MqttTarget


# Message ids are 16-bit: never have more than this many messages outstanding at once.
_CHUNK = 20_000


class PublishError(RuntimeError):
    pass


class Publisher:
    def __init__(self, mqtt_url: str, client_id: str = "", *, max_inflight: int = 2000) -> None:
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
        self._connected = threading.Event()
        self._client.on_connect = lambda *_args: self._connected.set()
        self._target = target
        self.published = 0

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
        infos = [self._client.publish(topic, payload, qos=qos) for topic, payload in chunk]
        for info in infos:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PublishError("timed out waiting for PUBACKs")
            info.wait_for_publish(timeout=remaining)
            if not info.is_published():
                raise PublishError(f"message {info.mid} was not acknowledged (rc={info.rc})")
        self.published += len(infos)
        return len(infos)

    def publish(self, topic: str, payload: bytes, *, qos: int = 1) -> None:
        self.publish_many([(topic, payload)], qos=qos)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
