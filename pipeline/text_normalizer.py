"""Transcript normalisation, applied before tokenisation and stored as the shard's `text`.

- Unicode NFKC (full-width forms, ligatures), then lower case (LibriSpeech is upper case,
  Common Voice mixed case); `language` is accepted for per-language rules (Turkish dotted i).
- Letters, combining marks and digits are kept, in every script.
- Apostrophes (' ’ ‘ ʼ) are kept as ' only inside a word ("don't", "l'eau"); quotes around
  words are dropped.
- Every other character (punctuation, symbols, hyphens, dashes) becomes a space; runs of
  whitespace collapse to one space; leading and trailing spaces are removed.
"""

from __future__ import annotations

import re
import unicodedata

_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "ʼ": "'", "`": "'", "´": "'"})
_SPACES = re.compile(r"\s+")
_STRAY_APOSTROPHE = re.compile(r"(?<!\w)'|'(?!\w)")


def _lower(text: str, language: str) -> str:
    if language in ("tr", "az"):
        text = text.replace("I", "ı").replace("İ", "i")
    return text.lower()


def _keep(ch: str) -> bool:
    if ch == "'" or ch == " ":
        return True
    category = unicodedata.category(ch)
    return category[0] in ("L", "M", "N")


class _OthersToSpace(dict):
    """A str.translate table: a character _keep refuses becomes a space, the others stay. Filled
    in as characters are met, so each is classified once (per character, in Python, it was half
    of planning the text of a 5 h corpus)."""

    def __missing__(self, codepoint: int) -> str:
        ch = chr(codepoint)
        self[codepoint] = ch if _keep(ch) else " "
        return self[codepoint]


_OTHERS_TO_SPACE = _OthersToSpace()


def normalize_text(text: str, language: str = "en") -> str:
    text = unicodedata.normalize("NFKC", text or "")
    text = _lower(text.translate(_APOSTROPHES), language)
    text = text.translate(_OTHERS_TO_SPACE)
    text = _SPACES.sub(" ", text).strip()
    text = _STRAY_APOSTROPHE.sub(" ", text)
    return _SPACES.sub(" ", text).strip()
