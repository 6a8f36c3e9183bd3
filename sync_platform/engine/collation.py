"""How MySQL/MariaDB compares and orders text under a collation, as data the rest of the engine uses.

Two facts about a string column's collation matter outside MySQL:

- **equality**: under a case-insensitive collation (``utf8mb4_general_ci``) ``'abc'`` and ``'ABC'``
  are one key; under a PAD SPACE collation (every MariaDB collation except ``*_nopad_*`` and
  ``binary``, MySQL's collations other than the ``_0900_`` ones) ``'abc'`` and ``'abc '`` are one key.
  A unique index at the source therefore holds one row per such key, and the warehouse merge must
  compare keys the same way (:func:`key_equality`, applied by the warehouse dialect).
- **order**: MySQL pages a text keyset in collation order; positions compared in Python must use
  the same order (:func:`sort_key`), not Python's code-point order (``'B' < 'a'``).

The Python order is exact for binary collations and, for case-insensitive ones, orders letters,
digits and accents by their upper-case base letter as ``*_general_ci`` does; the UCA collations
(``unicode_ci``, ``unicode_520_ci``, ``uca1400``, ``0900``) also put ASCII punctuation and symbols
in their order, before digits and letters. Further UCA weights (contractions, expansions such as
``'ß'``, the order of non-ASCII symbols) and trailing characters below the space are not modelled.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Any, Literal

TEXT_TYPES = frozenset({"char", "varchar", "tinytext", "text", "mediumtext", "longtext"})
KeyEquality = Literal["case", "pad", "case_pad"]  # what MySQL ignores when comparing keys


def ignores_case(collation: str | None) -> bool:
    """Text compared ignoring case or accents: distinct values in the warehouse may be one MySQL key."""
    name = (collation or "").lower()
    return name.endswith(("_ci", "_ai", "_ai_ci")) or "_ci_" in name or "_ai_" in name


def pads_spaces(data_type: str, collation: str | None) -> bool:
    """PAD SPACE: trailing spaces do not count when MySQL compares the column (``'abc' = 'abc '``)."""
    if data_type.lower() not in TEXT_TYPES or not collation:
        return False
    name = collation.lower()
    return "nopad" not in name and "_0900_" not in name and name != "binary"


def key_equality(data_type: str, collation: str | None) -> KeyEquality | None:
    """What MySQL's equality on the column ignores (None: it compares exactly, like the warehouse)."""
    if data_type.lower() not in TEXT_TYPES:
        return None
    case, pad = ignores_case(collation), pads_spaces(data_type, collation)
    if case and pad:
        return "case_pad"
    if case:
        return "case"
    return "pad" if pad else None


# The order of ASCII punctuation and symbols under the UCA collations (as MariaDB sorts them); digits
# and then letters follow them.
_UCA_400_SYMBOLS = " `^_-,;:!?.'\"()[]{}@*/\\&#%+<=>|~$"  # unicode_ci, unicode_520_ci
_UCA_NEW_SYMBOLS = " _-,;:!?.'\"()[]{}@*/\\&#%`^+<=>|~$"  # uca1400, MySQL's 0900


def sort_key(data_type: str, collation: str | None) -> Callable[[Any], Any] | None:
    """A Python sort key that orders the column's values as MySQL does; None when Python's order is MySQL's."""
    if data_type.lower() not in TEXT_TYPES:
        return None
    case, pad = ignores_case(collation), pads_spaces(data_type, collation)
    name = (collation or "").lower()
    symbols = None
    if "uca1400" in name or "_0900_" in name:
        symbols = _UCA_NEW_SYMBOLS
    elif "unicode" in name:
        symbols = _UCA_400_SYMBOLS
    if not case and not pad:
        return None

    def key(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        text = value.rstrip(" ") if pad else value
        if not case:
            return text
        return tuple(_char_weight(c, symbols) for c in text)

    return key


def _char_weight(char: str, symbols: str | None) -> tuple[int, int, str]:
    """general_ci: the upper-case base letter; UCA: symbols, then digits, then letters (case and accents aside)."""
    base = "".join(c for c in unicodedata.normalize("NFD", char) if not unicodedata.combining(c)) or char
    upper = base.upper()
    if symbols is None:
        return (0, 0, upper)
    if base.isalpha():
        return (2, 0, upper)
    if base.isdigit():
        return (1, 0, base)
    position = symbols.find(base)
    return (0, position if position >= 0 else len(symbols) + ord(base[0]), "")
