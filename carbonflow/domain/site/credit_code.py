"""The unified social credit code (统一社会信用代码, GB 32100-2015). Pure.

18 characters from the 31-character set ``0-9 A-H J-N P-R T U W-Y`` (no I, O, Z, S, V):
registration authority (1), organisation category (1), administrative division (6 digits),
organisation code (9, GB 11714), check character (1). The check character is
``31 − (Σ cᵢ·wᵢ mod 31)`` over the first 17 characters' values ``cᵢ`` with the weights
``wᵢ = 3^(i−1) mod 31`` (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28); 31 is
written ``0``.
"""

from __future__ import annotations

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
LENGTH = 18


def check_character(first17: str) -> str:
    """The 18th character of a code that starts with ``first17``."""
    if len(first17) != LENGTH - 1 or any(c not in ALPHABET for c in first17):
        raise ValueError(f"not the first 17 characters of a credit code: {first17!r}")
    total = sum(ALPHABET.index(c) * w for c, w in zip(first17, WEIGHTS, strict=True))
    return ALPHABET[(31 - total % 31) % 31]


def credit_code_problem(code: str) -> str | None:
    """Why ``code`` is not a unified social credit code (English and Chinese), or None."""
    if len(code) != LENGTH:
        return (
            f"a unified social credit code has {LENGTH} characters, not {len(code)} "
            f"(统一社会信用代码应为 {LENGTH} 位)"
        )
    bad = sorted({c for c in code if c not in ALPHABET})
    if bad:
        return (
            f"characters {''.join(bad)!r} are not used in a unified social credit code "
            f"(digits and upper-case letters without I, O, Z, S, V; 统一社会信用代码含非法字符)"
        )
    if not code[2:8].isdigit():
        return (
            "characters 3-8 of a unified social credit code are the administrative division "
            "code, six digits (第 3-8 位应为行政区划代码)"
        )
    expected = check_character(code[:17])
    if code[17] != expected:
        return (
            f"check character {code[17]!r} of {code} is wrong: GB 32100-2015 gives "
            f"{expected!r} (统一社会信用代码校验码错误，应为 {expected})"
        )
    return None
