"""What HJ 212-2025 is reported to change, behind the per-destination protocol version. Pure.

HJ 212-2025 replaced HJ 212-2017 on 2026-01-01; its text could not be read. The differences
below are reported only by public third-party code (REPORTING.md §1.0, evidence U) and each is
marked in docs/push.md as *to be checked* against the destination's documents:

* Flag version bits ``000010`` (:attr:`~carbonflow.domain.reporting.hj212.Version.HJ212_2025`:
  Flag 8 without, 9 with an answer);
* ST 44 (electricity monitoring, 用电监控) and 45 (key production conditions, 关键生产工况);
* CN 9015, a heartbeat;
* SM4-ECB encryption of the CP area of data commands (:func:`sm4_encode_cp`), through the
  ``cryptography`` library's SM4 (GB/T 32907-2016), not hand-written;
* the MN is an identifier the platform assigns (入网编码): taken from the destination's
  settings, never derived by us.
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from carbonflow.domain.reporting.hj212 import (
    ErrorReason,
    Hj212Error,
    Packet,
    Version,
    flag_value,
)

ST_ELECTRICITY_MONITORING = "44"
"""用电监控 (reported for 2025; to be checked)."""
ST_PRODUCTION_CONDITIONS = "45"
"""关键生产工况 (reported for 2025; to be checked)."""
HEARTBEAT_CN = "9015"
SM4_KEY_BYTES = 16
SM4_BLOCK_BYTES = 16
ENCRYPTED_CN_PREFIXES = ("2",)
"""Data commands (2xxx) carry an encrypted CP area; answers and requests do not (reported)."""


def heartbeat(qn: str, st: str, pw: str, mn: str) -> Packet:
    """A 9015 heartbeat (2025, to be checked): empty CP, no answer asked."""
    return Packet(
        qn=qn,
        st=st,
        cn=HEARTBEAT_CN,
        pw=pw,
        mn=mn,
        flag=flag_value(Version.HJ212_2025, answer=False),
    )


def _cipher(key: bytes) -> Cipher[modes.ECB]:
    if len(key) != SM4_KEY_BYTES:
        raise ValueError(f"an SM4 key has {SM4_KEY_BYTES} bytes, got {len(key)}")
    return Cipher(algorithms.SM4(key), modes.ECB())


def sm4_encode_cp(key: bytes) -> Callable[[str], str]:
    """A CP encoder for :meth:`Packet.segment`: the CP text's UTF-8 bytes, zero-padded to 16-byte
    blocks ("NoPadding": the padding rule is to be checked), SM4-ECB encrypted, as upper-case
    hex."""

    def encode(cp_text: str) -> str:
        data = cp_text.encode("utf-8")
        data += b"\0" * (-len(data) % SM4_BLOCK_BYTES)
        encryptor = _cipher(key).encryptor()
        return (encryptor.update(data) + encryptor.finalize()).hex().upper()

    return encode


def sm4_decode_cp(key: bytes) -> Callable[[str], str]:
    """The inverse of :func:`sm4_encode_cp`, for :func:`~.hj212.parse`."""

    def decode(cp_hex: str) -> str:
        try:
            data = bytes.fromhex(cp_hex)
        except ValueError as error:
            raise Hj212Error(ErrorReason.MALFORMED_SEGMENT, "CP is not hex") from error
        if len(data) % SM4_BLOCK_BYTES:
            raise Hj212Error(ErrorReason.MALFORMED_SEGMENT, "CP is not whole SM4 blocks")
        decryptor = _cipher(key).decryptor()
        plain = (decryptor.update(data) + decryptor.finalize()).rstrip(b"\0")
        try:
            return plain.decode("utf-8")
        except UnicodeDecodeError as error:
            raise Hj212Error(ErrorReason.MALFORMED_SEGMENT, "CP does not decrypt") from error

    return decode


def encrypts(version: Version, cn: str) -> bool:
    """Whether a packet of ``cn`` carries an encrypted CP area under ``version``."""
    return version >= Version.HJ212_2025 and cn.startswith(ENCRYPTED_CN_PREFIXES)
