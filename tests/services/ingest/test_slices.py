"""Site slices: which topics a worker subscribes to and which messages it stores."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.ingest.service import _result
from services.ingest.settings import IngestSettings


def _settings(**env: str) -> IngestSettings:
    return IngestSettings(DATABASE_URL="postgresql://x@127.0.0.1/db", **env)  # type: ignore[arg-type]


def test_default_is_one_plain_subscription_to_every_site() -> None:
    settings = _settings()
    assert settings.topic_filters == ("carbonflow/v1/#",)
    assert settings.owns("carbonflow/v1/any-site/m1/telemetry")


def test_a_slice_subscribes_to_its_sites_and_owns_only_them() -> None:
    settings = _settings(CARBONFLOW_INGEST_SITES=" mine-b, park-a ,")
    assert settings.topic_filters == ("carbonflow/v1/mine-b/#", "carbonflow/v1/park-a/#")
    assert settings.owns("carbonflow/v1/park-a/gateway/gw1/telemetry")
    # a subscription left in the session from an earlier slice: acknowledged, not stored
    assert not settings.owns("carbonflow/v1/park-c/m1/telemetry")


def test_the_rest_worker_takes_every_site_but_the_sliced_ones() -> None:
    settings = _settings(CARBONFLOW_INGEST_EXCLUDE_SITES="park-a")
    assert settings.topic_filters == ("carbonflow/v1/#",)
    assert not settings.owns("carbonflow/v1/park-a/m1/telemetry")
    assert settings.owns("carbonflow/v1/park-b/m1/telemetry")
    assert settings.owns("garbage")  # stored as an unknown_topic rejection by this worker


@pytest.mark.parametrize(
    "env",
    [
        {"CARBONFLOW_INGEST_SITES": "a", "CARBONFLOW_INGEST_EXCLUDE_SITES": "b"},
        {"CARBONFLOW_INGEST_SITES": "a", "CARBONFLOW_INGEST_SHARED_GROUP": "g"},
        {"CARBONFLOW_INGEST_SITES": "a/#"},
        {"CARBONFLOW_INGEST_EXCLUDE_SITES": "+"},
    ],
)
def test_contradictory_or_malformed_slices_are_misconfiguration(env: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        _settings(**env)


def test_message_results() -> None:
    assert [_result(a, r) for a, r in [(2, 0), (1, 1), (0, 1), (0, 0)]] == [
        "stored",
        "partly_rejected",
        "rejected",
        "skipped",
    ]
