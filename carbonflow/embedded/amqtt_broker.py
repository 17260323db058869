"""A pure-Python MQTT broker (amqtt), the fallback for ``make demo`` on machines without mosquitto.

Only for the demo: it speaks MQTT 3.1.1 only, has no shared subscriptions
(``$share/<group>/…``), so several ingest workers cannot split one stream, keeps no
sessions or queued messages across a restart, and is much slower than Mosquitto. The test
suite and deployments use Mosquitto (:mod:`carbonflow.embedded.broker`).

Run directly as ``python -m carbonflow.embedded.amqtt_broker --host 127.0.0.1 --port N``;
:class:`EmbeddedAmqtt` runs that as a child process with the same interface as
:class:`carbonflow.embedded.broker.EmbeddedMosquitto`. amqtt itself is imported only in the
child.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from carbonflow.embedded.child import ChildServer
from carbonflow.embedded.net import LOCALHOST

logger = logging.getLogger(__name__)

LOG_FILE = "amqtt.log"
STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0


def broker_config(host: str, port: int) -> dict[str, Any]:
    """amqtt configuration: one TCP listener, anonymous clients, no $SYS or packet logging."""
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {
            "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
        },
    }


async def serve(host: str, port: int, stop: asyncio.Event) -> None:
    """Run the broker until ``stop`` is set, then shut it down."""
    # Imported here: only the broker process needs amqtt, and importing it is slow.
    from amqtt.broker import Broker

    broker = Broker(broker_config(host, port))
    await broker.start()
    logger.info("amqtt broker listening on %s:%d", host, port)
    await stop.wait()
    await broker.shutdown()
    logger.info("amqtt broker stopped")


async def _run(host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(host, port, stop)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default=LOCALHOST)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("transitions").setLevel(logging.WARNING)
    asyncio.run(_run(args.host, args.port))
    return 0


class EmbeddedAmqtt(ChildServer):
    """The amqtt broker as a child process on ``127.0.0.1:<port>``, logging to ``data_dir``."""

    NAME = "amqtt broker"
    LOG_FILE = LOG_FILE
    OUTPUT_FILE = LOG_FILE

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        startup_timeout_s: float = STARTUP_TIMEOUT_S,
        stop_timeout_s: float = STOP_TIMEOUT_S,
    ) -> None:
        super().__init__(
            data_dir, port, startup_timeout_s=startup_timeout_s, stop_timeout_s=stop_timeout_s
        )

    def _prepare(self) -> tuple[list[str], dict[str, str] | None]:
        module = "carbonflow.embedded.amqtt_broker"
        return [sys.executable, "-m", module, "--host", LOCALHOST, "--port", str(self._port)], None


if __name__ == "__main__":
    sys.exit(main())
