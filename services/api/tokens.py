"""API key tokens: format, generation and hashing. Pure.

A token is ``cf_<key id>_<secret>``: the key id (12 hex digits) is public and names the key in
listings and the audit log; the secret is 32 random bytes (256 bits, URL-safe base64). Only the
SHA-256 of the whole token is stored. A fast hash is enough because the secret is random and
long: nobody can guess it, so there is nothing for a slow password hash (argon2, bcrypt) to
protect against, and every request can be checked without a costly hash. Comparison is in
constant time (:func:`hmac.compare_digest`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

PREFIX = "cf"
KEY_ID_BYTES = 6  # 12 hex digits
SECRET_BYTES = 32  # 256 bits
_TOKEN = re.compile(r"cf_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")


@dataclass(frozen=True, slots=True)
class NewKey:
    key_id: str
    token: str  # shown once, never stored
    secret_sha256: str


def new_key(key_id: str | None = None) -> NewKey:
    """A fresh random key; with ``key_id``, a new secret for that key (rotation)."""
    key_id = key_id or secrets.token_hex(KEY_ID_BYTES)
    token = f"{PREFIX}_{key_id}_{secrets.token_urlsafe(SECRET_BYTES)}"
    return NewKey(key_id, token, token_sha256(token))


def random_secret() -> str:
    """A random secret for ``CARBONFLOW_API_ADMIN_KEY`` (43 characters, 256 bits)."""
    return secrets.token_urlsafe(SECRET_BYTES)


def key_id_of(token: str) -> str | None:
    """The key id of a well-formed token, else ``None``."""
    match = _TOKEN.fullmatch(token)
    return match.group(1) if match else None


def token_sha256(token: str) -> str:
    """Hex SHA-256 of the token's UTF-8 bytes."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def matches(token: str, stored_sha256: str) -> bool:
    """Whether ``token`` hashes to ``stored_sha256``, compared in constant time."""
    return hmac.compare_digest(token_sha256(token), stored_sha256)
