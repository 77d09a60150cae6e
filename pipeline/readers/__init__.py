"""Corpus readers: list a LibriSpeech or Common Voice tree (local path or s3:// URI) and yield one
Utterance per usable entry and one Rejection per defective one, without opening any audio.

    from pipeline.readers import read_corpus
    for record in read_corpus("librispeech", "s3://bucket/LibriSpeech", splits=["dev-clean"]):
        ...
"""

from __future__ import annotations

from collections.abc import Iterator

from pipeline.errors import UserError
from pipeline.readers.commonvoice import read_commonvoice
from pipeline.readers.librispeech import read_librispeech
from pipeline.records import Rejection, Utterance

CORPORA = ("librispeech", "commonvoice")


def read_corpus(
    corpus: str,
    root_uri: str,
    splits: list[str] | None = None,
    languages: list[str] | None = None,
) -> Iterator[Utterance | Rejection]:
    """Records of a corpus in a stable order (split, then utterance id)."""
    if corpus == "librispeech":
        if languages and list(languages) != ["en"]:
            raise UserError(f"LibriSpeech is English only; got --languages {','.join(languages)}")
        return read_librispeech(root_uri, splits=splits)
    if corpus == "commonvoice":
        return read_commonvoice(root_uri, splits=splits, languages=languages)
    raise UserError(f"unknown corpus {corpus!r}; expected one of: {', '.join(CORPORA)}")


__all__ = ["CORPORA", "read_corpus", "read_librispeech", "read_commonvoice"]
