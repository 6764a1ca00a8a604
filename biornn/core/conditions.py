"""The one table of the six experimental conditions (experience level x window type) and their names.

Every module reads the conditions, their abbreviations, titles and the compared pairs from here, and parses a
user's condition name with :func:`condition_name` / :func:`condition_abbrev`.
"""

from __future__ import annotations

import re

from biornn.core.errors import BiornnError

EXPERIENCE_LEVELS = ("familiar", "novel")
WINDOW_TYPES = ("change", "no_change", "omission")
#: The six conditions, experience-major (the order of the twin's connectivity stack and of every table).
CONDITIONS = tuple(f"{e}_{w}" for e in EXPERIENCE_LEVELS for w in WINDOW_TYPES)
#: Long name -> abbreviation (``familiar_change`` -> ``FC``).
ABBREVIATIONS = dict(zip(CONDITIONS, ("FC", "FN", "FO", "NC", "NN", "NO")))
#: Abbreviation -> long name.
BY_ABBREVIATION = {v: k for k, v in ABBREVIATIONS.items()}
#: Figure titles (the reference's "<name>-Sparse" titles), by abbreviation.
CONDITION_TITLES = {"FC": "Familiar-Change", "FN": "Familiar-No-Change", "FO": "Familiar-Omission",
                    "NC": "Novel-Change", "NN": "Novel-No-Change", "NO": "Novel-Omission"}
#: The nine published pairs (A, B) by abbreviation; every difference is B - A (Q section 6 of the Fig 4-5 notes).
PAIRS = (("FN", "FC"), ("FN", "FO"), ("FC", "FO"), ("NN", "NC"), ("NN", "NO"), ("NC", "NO"),
         ("FN", "NN"), ("FC", "NC"), ("FO", "NO"))
WINDOWS = ("full", "half")


def condition_name(name: str) -> str:
    """``"FC"``, ``"fc"``, ``"familiar-change"`` or ``"familiar_change"`` -> ``"familiar_change"``."""
    return BY_ABBREVIATION[condition_abbrev(name)]


def condition_abbrev(name: str) -> str:
    """``"FC"``, ``"fc"`` or ``"familiar_change"`` (also with ``-`` or spaces) -> ``"FC"``; BiornnError otherwise."""
    key = str(name).strip()
    if key.upper() in BY_ABBREVIATION:
        return key.upper()
    long = re.sub(r"[\s\-]+", "_", key.lower())
    if long in ABBREVIATIONS:
        return ABBREVIATIONS[long]
    raise BiornnError(f"unknown condition {name!r}; use one of {', '.join(CONDITIONS)} "
                      f"or {', '.join(BY_ABBREVIATION)}")


def split_condition(condition: str) -> tuple[str, str]:
    """``"novel_no_change"`` -> ``("novel", "no_change")``; raise :class:`BiornnError` for unknown names."""
    if condition not in CONDITIONS:
        raise BiornnError(f"unknown condition {condition!r}; use one of {', '.join(CONDITIONS)}")
    experience, window_type = condition.split("_", 1)
    return experience, window_type
