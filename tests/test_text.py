"""The compatibility-character class shipped in engines/_compat_chars.py matches Unicode."""

from __future__ import annotations

import unicodedata

from shukei.engines import _compat_chars
from shukei.engines.text import compat_char_class, compute_compat_char_class


def test_shipped_class_is_the_computed_one_for_this_unicode_version() -> None:
    computed = compute_compat_char_class()
    assert compat_char_class() == computed
    if unicodedata.unidata_version == _compat_chars.UNIDATA_VERSION:
        assert computed == _compat_chars.CHAR_CLASS


def test_class_covers_exactly_the_characters_nfkc_changes_alone() -> None:
    import re

    # the class is RE2 syntax (\x{HEX}): read its code points back
    cls = compat_char_class()
    points: set[int] = set()
    for a, b in re.findall(r"\\x\{([0-9A-F]+)\}(?:-\\x\{([0-9A-F]+)\})?", cls):
        lo = int(a, 16)
        points.update(range(lo, int(b or a, 16) + 1))
    # by hand: full-width A, the circled 1, the ligature fi, the half-width katakana a are in;
    # plain A, hiragana a and a kanji are not
    for ch in ("\uff21", "\u2460", "\ufb01", "\uff71"):
        assert ord(ch) in points and unicodedata.normalize("NFKC", ch) != ch
    for ch in ("A", "\u3042", "\u6771"):
        assert ord(ch) not in points and unicodedata.normalize("NFKC", ch) == ch
