"""Who is asking: bearer tokens to :class:`~services.api.access.Principal` s.

A token is either the bootstrap admin key of the environment (``CARBONFLOW_API_ADMIN_KEY``) or a
key of the ``api_key`` table, looked up by its public key id and checked against the stored
SHA-256 in constant time. A looked-up key is reused for ``cache_s`` seconds, so a revocation
takes at most that long; the secret is checked on every request either way, and a secret that
does not match the cached one is looked up again (the key may have been rotated).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from carbonflow.storage.access import KeyRecord
from services.api.access import Principal, Role
from services.api.tokens import key_id_of, matches, token_sha256

BOOTSTRAP_KEY_ID = "bootstrap-admin"
# A header value longer than this is not a token [characters].
MAX_TOKEN_CHARS = 512


@dataclass(frozen=True, slots=True)
class _Cached:
    record: KeyRecord
    loaded_at: float  # monotonic clock [s]


class _Miss:
    """Marker: the cache cannot answer without the database."""


MISS = _Miss()


class Authenticator:
    def __init__(
        self,
        lookup: Callable[[str], KeyRecord | None],
        *,
        admin_key: str | None,
        cache_s: float,
        clock: Callable[[], float],
        wall_clock: Callable[[], datetime],
    ) -> None:
        self._lookup = lookup
        self._admin_sha256 = token_sha256(admin_key) if admin_key else None
        self._cache_s = cache_s
        self._clock = clock
        self._wall = wall_clock
        self._cache: dict[str, _Cached] = {}
        self._lock = threading.Lock()

    def cached(self, token: str) -> Principal | _Miss | None:
        """The principal without I/O, or :data:`MISS` when the database must be asked."""
        if len(token) > MAX_TOKEN_CHARS:
            return None
        if self._admin_sha256 is not None and matches(token, self._admin_sha256):
            return Principal(BOOTSTRAP_KEY_ID, Role.ADMIN, "bootstrap admin key", None, None)
        key_id = key_id_of(token)
        if key_id is None:
            return None
        with self._lock:
            entry = self._cache.get(key_id)
        if entry is None or self._clock() - entry.loaded_at >= self._cache_s:
            return MISS
        if not matches(token, entry.record.secret_sha256):
            return MISS  # the key may have been rotated since it was cached: ask the database
        return self._check(token, entry.record)

    def authenticate(self, token: str) -> Principal | None:
        """The principal of ``token``, asking the database when the cache cannot (blocking)."""
        found = self.cached(token)
        if not isinstance(found, _Miss):
            return found
        key_id = key_id_of(token)
        assert key_id is not None  # cached() answers None for malformed tokens
        record = self._lookup(key_id)
        with self._lock:
            if record is None:
                self._cache.pop(key_id, None)
            else:
                self._cache[key_id] = _Cached(record, self._clock())
        return None if record is None else self._check(token, record)

    def forget(self, key_id: str) -> None:
        """Drop a cached key (after revoking it in this process)."""
        with self._lock:
            self._cache.pop(key_id, None)

    def _check(self, token: str, record: KeyRecord) -> Principal | None:
        if not matches(token, record.secret_sha256):
            return None
        if record.expires_at is not None and record.expires_at <= self._wall():
            return None
        role = Role(record.role)
        return Principal(
            key_id=record.key_id,
            role=role,
            label=record.label,
            site_ids=None if role is Role.ADMIN else record.site_ids,
            org_id=record.org_id,
            requests_per_minute=record.requests_per_minute,
        )
