"""PostgreSQL binary COPY to and from numpy arrays, for the calc service's bulk reads and writes.

Binary COPY (https://www.postgresql.org/docs/15/sql-copy.html, "Binary Format"): a 19-byte
header, then per row an int16 field count and per field an int32 length and the value in network
byte order; an int16 −1 ends the data. ``timestamptz`` is int64 microseconds since 2000-01-01 UTC,
``float8`` IEEE 754, ``bool`` one byte. Rows whose fields all have fixed widths are one numpy
structured dtype; the one variable-width field written here (a short text from a fixed set) is
handled by padding and masking.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import numpy.typing as npt

HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
#: microseconds from the Unix epoch to PostgreSQL's (2000-01-01 UTC)
PG_EPOCH_US = 946_684_800_000_000


def row_dtype(fields: Sequence[tuple[str, str]]) -> np.dtype[np.void]:
    """The dtype of a row of non-null fixed-width fields (name, big-endian numpy type)."""
    parts: list[tuple[str, str]] = [("_n", ">i2")]
    for name, kind in fields:
        parts += [(f"_len_{name}", ">i4"), (name, kind)]
    return np.dtype(parts)


def parse_rows(data: bytes, dtype: np.dtype[np.void]) -> npt.NDArray[np.void]:
    """The rows of a binary COPY TO of non-null fixed-width fields (``dtype`` of row_dtype)."""
    if not data.startswith(HEADER[:11]):
        raise ValueError("not a PostgreSQL binary COPY stream")
    extension = int.from_bytes(data[15:19], "big")
    body = memoryview(data)[19 + extension : len(data) - len(TRAILER)]
    if len(body) % dtype.itemsize:
        raise ValueError("binary COPY rows are not of the expected widths (a NULL?)")
    return np.frombuffer(body, dtype=dtype)


def fixed_rows(dtype: np.dtype[np.void], count: int) -> npt.NDArray[np.void]:
    """``count`` rows of ``dtype`` with their field count and lengths filled in."""
    rows = np.zeros(count, dtype=dtype)
    names = [n for n in dtype.names or () if not n.startswith("_")]
    rows["_n"] = len(names)
    for name in names:
        rows[f"_len_{name}"] = dtype.fields[name][0].itemsize  # type: ignore[index]
    return rows


def join_with_text(
    head: npt.NDArray[np.void],
    text_codes: npt.NDArray[np.integer],
    texts: Sequence[str],
    tail: npt.NDArray[np.void],
    *,
    chunk: int = 65_536,
) -> Iterator[bytes]:
    """Rows of ``head`` bytes, one text of ``texts`` (by code, length-prefixed) and ``tail``
    bytes, in order, as binary COPY data in chunks (no header or trailer)."""
    encoded = [t.encode() for t in texts]
    widest = max(len(t) for t in encoded)
    h, t = head.dtype.itemsize, tail.dtype.itemsize
    width = h + 4 + widest + t
    table = np.zeros((len(encoded), 4 + widest), dtype=np.uint8)
    keep = np.ones((len(encoded), width), dtype=np.bool_)
    for code, text in enumerate(encoded):
        table[code, :4] = np.frombuffer(len(text).to_bytes(4, "big"), dtype=np.uint8)
        table[code, 4 : 4 + len(text)] = np.frombuffer(text, dtype=np.uint8)
        keep[code, h + 4 + len(text) : h + 4 + widest] = False
    for lo in range(0, len(head), chunk):
        hi = min(len(head), lo + chunk)
        codes = np.asarray(text_codes[lo:hi], dtype=np.intp)
        buf = np.empty((hi - lo, width), dtype=np.uint8)
        buf[:, :h] = head[lo:hi].view(np.uint8).reshape(hi - lo, h)
        buf[:, h : h + 4 + widest] = table[codes]
        buf[:, h + 4 + widest :] = tail[lo:hi].view(np.uint8).reshape(hi - lo, t)
        yield buf[keep[codes]].tobytes()
