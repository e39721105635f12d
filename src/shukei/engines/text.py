"""Unicode NFKC in engines that lack it, without sending every value through Python.

A text value is already NFKC exactly when it is NFC and holds no character with a compatibility
decomposition. The engine tests that with its own NFC function and one regular expression over the
compatibility characters (built here from `unicodedata`), and only the values that fail the test go
through the vectorised Arrow normaliser.
"""

from __future__ import annotations

import functools
import sys
import unicodedata


@functools.cache
def compat_char_class() -> str:
    """An RE2 character class of every code point with a compatibility decomposition.

    Computing it walks 200,000 code points (0.1 s, on every run), so the class for the Unicode
    version of the Python shukei is developed on ships in `_compat_chars.py`."""
    from shukei.engines import _compat_chars

    if unicodedata.unidata_version == _compat_chars.UNIDATA_VERSION:
        return _compat_chars.CHAR_CLASS
    return compute_compat_char_class()


def compute_compat_char_class() -> str:
    ranges: list[tuple[int, int]] = []
    for cp in range(0xA0, min(sys.maxunicode, 0x2FFFF) + 1):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        if unicodedata.decomposition(chr(cp)).startswith("<"):
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))
    parts = [f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in ranges]
    return "[" + "".join(parts) + "]"


def arrow_nfkc(values: object) -> object:
    """Arrow UDF body: NFKC-normalise a string array."""
    import pyarrow.compute as pc

    return pc.utf8_normalize(values, "NFKC")
