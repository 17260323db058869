"""The live stream over a real HTTP server (uvicorn): a client that goes away ends its stream."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import anyio
import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from services.api.context import ApiContext
from tests.support.api_support import MINE, make_app, seed
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def server(database_url: str) -> Iterator[tuple[str, FastAPI, str]]:
    seeded = seed(database_url)
    # Real time and real pauses here: the stream would run for an hour if nobody stopped it.
    app = make_app(
        database_url,
        settings={"CARBONFLOW_API_STREAM_INTERVAL_S": 0.05, "CARBONFLOW_API_STREAM_MAX_S": 3600},
        wall_clock=lambda: datetime.now(UTC),
        stream_sleep=anyio.sleep,
    )
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, access_log=False)
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, name="api-under-test", daemon=True)
    thread.start()
    try:
        wait_until(lambda: uv.started, timeout_s=20, message="uvicorn did not start")
        port = uv.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}", app, seeded.tokens["operator"]
    finally:
        uv.should_exit = True
        thread.join(timeout=20)
        assert not thread.is_alive()


def test_stream_ends_when_the_client_disconnects(server: tuple[str, FastAPI, str]) -> None:
    base, app, token = server
    context: ApiContext = app.state.api
    url = f"{base}/api/v1/sites/{MINE}/live/stream"
    with (
        httpx.Client(timeout=10) as client,
        client.stream("GET", url, headers={"Authorization": f"Bearer {token}"}) as response,
    ):
        assert response.status_code == 200
        # Hold the line iterator: dropping it would close the connection (httpcore closes a
        # stream whose iterator is closed), which this test then does on purpose.
        lines = response.iter_lines()
        events = 0
        while events < 3:
            if next(lines).startswith("event: snapshot"):
                events += 1
        assert context.open_streams == 1
        response.close()
    # The client closed the connection: the server notices and ends the stream.
    wait_until(lambda: context.open_streams == 0, timeout_s=10, message="stream still open")
    metrics = httpx.get(f"{base}/metrics").text
    assert "carbonflow_api_live_streams 0.0" in metrics
