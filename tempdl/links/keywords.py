"""Keyword folding: the one form in which what a follower typed and a configured keyword meet.

Followers type keywords the way their input method and habits make them: full-width letters,
wrapped in corner brackets or curly quotes (`「芝麻开门」`, `“芝麻开门”`), with a full stop or an
exclamation mark (`芝麻开门！`, `Open Sesame.`), with an emoji variation selector (U+FE0F) or a
zero-width character pasted along, or a BOM at the front. All of these should still match.
"""

from __future__ import annotations

import functools
import re
import unicodedata

_INVISIBLE_CATEGORIES = frozenset({"Cf"})
"""Format characters: zero-width space and joiners, the BOM, bidi marks; dropped anywhere."""
_EDGE_CATEGORY_PREFIXES = ("P", "S")
"""Punctuation (brackets, quotes, full stops) and symbols (emoji, currency): trimmed at the ends."""


def _is_variation_selector(char: str) -> bool:
    code = ord(char)
    return 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF


def _is_invisible(char: str) -> bool:
    return unicodedata.category(char) in _INVISIBLE_CATEGORIES or _is_variation_selector(char)


def _is_edge_noise(char: str) -> bool:
    category = unicodedata.category(char)
    return char.isspace() or category == "Zs" or category.startswith(_EDGE_CATEGORY_PREFIXES)


def normalize_keyword(text: str) -> str:
    """Fold what a follower typed into the form keywords are compared in.

    NFKC turns full-width letters and spaces (common with Chinese input methods) into their ASCII
    forms and casefold ignores case; invisible characters (format characters such as zero-width
    spaces and the BOM, and variation selectors) are dropped wherever they are, runs of white space
    count as one space, and punctuation, symbols and spaces are trimmed from both ends. Inner
    punctuation stays: `C++` and `C#` remain different keywords from `C`.
    """
    return _fold_short(text) if len(text) <= _CACHED_UP_TO else _fold(text)


_CACHED_UP_TO = 64
"""Characters of a text whose folding is remembered: followers send the same few keywords over and
over, and a bound on both the count and the length keeps a flood of long messages from growing memory."""


def _fold(text: str) -> str:
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    visible = "".join(char for char in folded if not _is_invisible(char))
    collapsed = re.sub(r"\s+", " ", visible)
    start, end = 0, len(collapsed)
    while start < end and _is_edge_noise(collapsed[start]):
        start += 1
    while end > start and _is_edge_noise(collapsed[end - 1]):
        end -= 1
    return collapsed[start:end]


_fold_short = functools.lru_cache(maxsize=2048)(_fold)
