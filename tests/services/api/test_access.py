"""API access, pure parts: tokens, roles, grants, rate limits, the key cache, settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr, ValidationError

from carbonflow.storage.access import KeyRecord
from services.api.access import Action, Principal, Role, grant_problems
from services.api.auth import BOOTSTRAP_KEY_ID, MISS, Authenticator
from services.api.ratelimit import RateLimiter
from services.api.settings import ApiSettings
from services.api.tokens import key_id_of, matches, new_key, token_sha256

NOW = datetime(2026, 11, 23, 6, 15, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


# --- tokens ----------------------------------------------------------------------------------


def test_new_key_has_the_documented_format_and_only_its_hash_matches() -> None:
    key = new_key()
    prefix, key_id, secret = key.token.split("_", 2)
    assert prefix == "cf"
    assert key_id == key.key_id and len(key_id) == 12
    assert len(secret) == 43  # 32 bytes, URL-safe base64 without padding
    assert key_id_of(key.token) == key.key_id
    assert key.secret_sha256 == token_sha256(key.token)
    assert matches(key.token, key.secret_sha256)
    assert not matches(key.token[:-1] + ("A" if key.token[-1] != "A" else "B"), key.secret_sha256)
    assert key.token not in key.secret_sha256


def test_two_keys_differ() -> None:
    assert new_key().token != new_key().token


@pytest.mark.parametrize(
    "token",
    ["", "cf_", "cf_0123456789ab", "cf_0123456789AB_" + "a" * 43, "xx_0123456789ab_" + "a" * 43,
     "cf_0123456789ab_" + "a" * 42, "cf_0123456789ab_" + "a" * 43 + "\n"],
)  # fmt: skip
def test_malformed_tokens_have_no_key_id(token: str) -> None:
    assert key_id_of(token) is None


# --- roles and grants ------------------------------------------------------------------------


def _principal(
    role: Role, sites: frozenset[str] | None = None, org: str | None = None
) -> Principal:
    return Principal("k", role, "test", sites, org)


def test_permissions_by_role() -> None:
    admin = _principal(Role.ADMIN)
    operator = _principal(Role.OPERATOR, frozenset({"mine"}))
    enterprise = _principal(Role.ENTERPRISE, frozenset({"park"}), "cathode-plant")
    regulator = _principal(Role.REGULATOR, frozenset({"mine"}))
    assert all(admin.may(a) for a in Action)
    assert operator.may(Action.READ_REJECTIONS) and not operator.may(Action.WRITE_GREEN)
    assert enterprise.may(Action.WRITE_GREEN) and not enterprise.may(Action.READ_REJECTIONS)
    assert not regulator.may(Action.WRITE_GREEN)
    assert {a for a in Action if regulator.may(a)} == {
        Action.READ_REGISTRY,
        Action.READ_LIVE,
        Action.READ_REJECTIONS,
        Action.READ_GREEN,
        Action.READ_ALARMS,
        Action.READ_PUSH,
    }
    assert operator.may(Action.REVIEW_PUSH) and not enterprise.may(Action.READ_PUSH)
    assert operator.may(Action.ACK_ALARMS) and not operator.may(Action.CONFIGURE_ALARMS)
    assert not enterprise.may(Action.READ_ALARMS) and not regulator.may(Action.ACK_ALARMS)


def test_site_visibility_and_org_scope() -> None:
    assert _principal(Role.ADMIN).sees_site("anything")
    operator = _principal(Role.OPERATOR, frozenset({"mine"}))
    assert operator.sees_site("mine") and not operator.sees_site("park")
    assert operator.org_scope is None
    enterprise = _principal(Role.ENTERPRISE, frozenset({"park"}), "cathode-plant")
    assert enterprise.org_scope == "cathode-plant"


def test_every_regulator_request_is_audited_by_the_middleware() -> None:
    assert _principal(Role.REGULATOR, frozenset()).audited
    assert not _principal(Role.OPERATOR, frozenset()).audited
    # writes by other roles are audited by the route, in the write's own transaction
    assert not _principal(Role.ADMIN).audited


@pytest.mark.parametrize(
    ("role", "sites", "org", "ok"),
    [
        (Role.ADMIN, [], None, True),
        (Role.ADMIN, ["mine"], None, False),
        (Role.OPERATOR, ["mine", "park"], None, True),
        (Role.OPERATOR, [], None, False),
        (Role.OPERATOR, ["mine"], "x", False),
        (Role.ENTERPRISE, ["park"], "cathode-plant", True),
        (Role.ENTERPRISE, ["park"], None, False),
        (Role.ENTERPRISE, ["park", "mine"], "cathode-plant", False),
        (Role.REGULATOR, ["mine"], None, True),
        (Role.REGULATOR, ["mine", "mine"], None, False),
    ],
)
def test_grant_rules(role: Role, sites: list[str], org: str | None, ok: bool) -> None:
    assert (grant_problems(role, sites, org) == []) is ok


# --- rate limit ------------------------------------------------------------------------------


def test_token_bucket_refuses_after_the_burst_and_refills_at_the_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(capacity=3, clock=clock)
    # 3 tokens at start: three requests pass, the fourth is refused.
    assert [limiter.acquire("a", 60).allowed for _ in range(4)] == [True, True, True, False]
    refused = limiter.acquire("a", 60)
    # 60 /min = 1 token/s; the bucket is empty, one token takes 1 / 1 s = 1 s.
    assert refused.retry_after_s == pytest.approx(1.0)
    assert refused.retry_after_header == "1"
    clock.t += 0.5  # half a token back: still refused, 0.5 s to go
    assert limiter.acquire("a", 60).retry_after_s == pytest.approx(0.5)
    clock.t += 0.5
    assert limiter.acquire("a", 60).allowed
    # Another key has its own bucket.
    assert limiter.acquire("b", 60).allowed


def test_token_bucket_never_exceeds_its_capacity() -> None:
    clock = FakeClock()
    limiter = RateLimiter(capacity=2, clock=clock)
    clock.t += 3600  # an hour idle refills 3600 tokens at 1/s, capped at 2
    assert [limiter.acquire("a", 60).allowed for _ in range(3)] == [True, True, False]


def test_slow_rate_retry_after_rounds_up() -> None:
    clock = FakeClock()
    limiter = RateLimiter(capacity=1, clock=clock)
    assert limiter.acquire("a", 7).allowed
    # 7 /min: one token takes 60 / 7 = 8.571 s → Retry-After 9.
    refused = limiter.acquire("a", 7)
    assert refused.retry_after_s == pytest.approx(60 / 7)
    assert refused.retry_after_header == "9"


# --- key cache -------------------------------------------------------------------------------


def _record(key_token: str, key_id: str, **changes: object) -> KeyRecord:
    fields: dict[str, object] = {
        "key_id": key_id,
        "secret_sha256": token_sha256(key_token),
        "role": "operator",
        "org_id": None,
        "label": "control room",
        "requests_per_minute": None,
        "site_ids": frozenset({"mine"}),
        "expires_at": None,
    }
    fields.update(changes)
    return KeyRecord(**fields)  # type: ignore[arg-type]


def test_authenticator_caches_a_key_for_cache_s_and_checks_the_secret_every_time() -> None:
    key = new_key()
    calls: list[str] = []
    stored = {key.key_id: _record(key.token, key.key_id)}

    def lookup(key_id: str) -> KeyRecord | None:
        calls.append(key_id)
        return stored.get(key_id)

    clock = FakeClock()
    auth = Authenticator(lookup, admin_key=None, cache_s=5, clock=clock, wall_clock=lambda: NOW)
    assert auth.cached(key.token) is MISS
    principal = auth.authenticate(key.token)
    assert principal is not None and principal.role is Role.OPERATOR
    assert principal.site_ids == frozenset({"mine"})
    assert auth.cached(key.token) == principal and calls == [key.key_id]
    # Same key id, another secret: looked up again (the key may have been rotated), refused.
    forged = key.token[:17] + ("b" if key.token[17] != "b" else "c") + key.token[18:]
    assert auth.cached(forged) is MISS
    assert auth.authenticate(forged) is None and calls == [key.key_id, key.key_id]
    # A rotated key: the new secret is accepted at once, the old one no longer.
    rotated = new_key(key.key_id)
    stored[key.key_id] = _record(rotated.token, key.key_id)
    assert auth.authenticate(rotated.token) is not None
    assert auth.cached(key.token) is MISS and auth.authenticate(key.token) is None
    stored[key.key_id] = _record(key.token, key.key_id)
    assert auth.authenticate(key.token) is not None
    # Revoked in the database: seen after cache_s.
    del stored[key.key_id]
    clock.t += 5
    assert auth.cached(key.token) is MISS
    assert auth.authenticate(key.token) is None


def test_authenticator_refuses_expired_keys_and_knows_the_bootstrap_key() -> None:
    key = new_key()
    expired = _record(key.token, key.key_id, expires_at=NOW - timedelta(seconds=1))
    auth = Authenticator(
        lambda _k: expired,
        admin_key="b" * 40,
        cache_s=5,
        clock=FakeClock(),
        wall_clock=lambda: NOW,
    )
    assert auth.authenticate(key.token) is None
    admin = auth.cached("b" * 40)
    assert isinstance(admin, Principal)
    assert admin.key_id == BOOTSTRAP_KEY_ID and admin.role is Role.ADMIN
    assert admin.site_ids is None
    assert auth.cached("b" * 39) is None
    assert auth.cached("x" * 10_000) is None


def test_admin_principal_sees_every_site_even_with_stored_sites() -> None:
    key = new_key()
    record = _record(key.token, key.key_id, role="admin", site_ids=frozenset({"stray"}))
    auth = Authenticator(
        lambda _k: record, admin_key=None, cache_s=0, clock=FakeClock(), wall_clock=lambda: NOW
    )
    principal = auth.authenticate(key.token)
    assert principal is not None and principal.site_ids is None


# --- settings --------------------------------------------------------------------------------

_DB = "postgresql://u@127.0.0.1:5432/db"


@pytest.mark.parametrize("environment", ["production", "test"])
@pytest.mark.parametrize("secret", ["changeme", "admin", "short-but-not-a-placeholder"])
def test_placeholder_or_short_admin_key_is_refused_outside_development(
    environment: str, secret: str
) -> None:
    with pytest.raises(ValidationError, match="CARBONFLOW_API_ADMIN_KEY"):
        ApiSettings(DATABASE_URL=_DB, CARBONFLOW_ENV=environment, CARBONFLOW_API_ADMIN_KEY=secret)


def test_admin_key_rules() -> None:
    strong = "k" * 43
    settings = ApiSettings(
        DATABASE_URL=_DB, CARBONFLOW_ENV="production", CARBONFLOW_API_ADMIN_KEY=strong
    )
    assert settings.admin_key == SecretStr(strong)
    assert ApiSettings(DATABASE_URL=_DB, CARBONFLOW_ENV="production").admin_key is None
    dev = ApiSettings(DATABASE_URL=_DB, CARBONFLOW_ENV="development", CARBONFLOW_API_ADMIN_KEY="x")
    assert dev.admin_key is not None


def test_failed_authentications_are_throttled_per_client() -> None:
    from services.api.ratelimit import FailedAuthThrottle

    now = [0.0]
    throttle = FailedAuthThrottle(3, 6, lambda: now[0])  # 3 at once, then 6/min = one per 10 s
    for _ in range(3):
        assert throttle.refused("10.0.0.1") is None
        assert throttle.failed("10.0.0.1").allowed
    assert not throttle.failed("10.0.0.1").allowed  # the 4th failure: blocked
    refusal = throttle.refused("10.0.0.1")
    assert refusal is not None and refusal.retry_after_header == "10"  # (1 - 0) / (6/60 s) = 10 s
    assert throttle.refused("10.0.0.2") is None  # another client is not affected
    now[0] = 10.0
    assert throttle.refused("10.0.0.1") is None  # one attempt is back after 10 s
    assert throttle.failed("10.0.0.1").allowed
    assert not throttle.failed("10.0.0.1").allowed
