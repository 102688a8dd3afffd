"""Text helpers."""

from __future__ import annotations

import re

VOWELS = "aeio"


def count_vowels(text: str) -> int:
    """How many vowels `text` has, upper or lower case."""
    return sum(1 for char in text.lower() if char in VOWELS)


def shout(text: str) -> str:
    """`text` in capitals with an exclamation mark."""
    return text.upper() + "!"


def slugify(text: str) -> str:
    """A lower-case, hyphen-separated form of `text` for URLs."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    return "-".join(words)
