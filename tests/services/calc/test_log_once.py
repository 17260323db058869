"""One LogOnce for the calc engine and the ingest pipeline, each keeping its limit policy."""

from __future__ import annotations

import logging

import pytest

from carbonflow.logs import LogOnce

LOG = logging.getLogger("tests.log_once")


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOG.name]


def test_a_key_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    once = LogOnce(LOG)
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        once("a", "problem %s", 1)
        once("a", "problem %s", 2)
        once(("b", None), "other %s", 3)
    assert _messages(caplog) == ["problem 1", "other 3"]


def test_forget_clears_the_memory_when_full(caplog: pytest.LogCaptureFixture) -> None:
    once = LogOnce(LOG, capacity=2, when_full="forget")
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        for key in ("a", "b", "c", "a", "b", "c"):
            once(key, key)
    # c arrives with two keys remembered: memory cleared, c logged; a and b are new again.
    assert _messages(caplog) == ["a", "b", "c", "a", "b", "c"]


def test_stop_logs_no_new_key_when_full(caplog: pytest.LogCaptureFixture) -> None:
    once = LogOnce(LOG, capacity=2, when_full="stop")
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        for key in ("a", "b", "c", "a", "c"):
            once(key, key)
    assert _messages(caplog) == ["a", "b"]


def test_exc_info_is_passed_on(caplog: pytest.LogCaptureFixture) -> None:
    once = LogOnce(LOG)
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            once("k", "failed", exc_info=True)
    (record,) = [r for r in caplog.records if r.name == LOG.name]
    assert record.exc_info is not None and record.levelno == logging.WARNING
