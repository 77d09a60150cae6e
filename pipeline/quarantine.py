"""The quarantine table: one row per rejected input (utt_id, split, audio_uri, reason, detail).

Rows come from three places, all with a machine-readable reason:
- the corpus reader (missing_transcript, empty_transcript, malformed_row, duplicate_utt_id,
  missing_audio, ...: see pipeline/readers),
- text checks before tokenisation (REASONS_TEXT below),
- audio decoding and validation in the Ray tasks (pipeline.audio reasons, plus processing_error
  for anything unexpected, with the exception in `detail`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import pyarrow as pa

from pipeline.audio import (AUDIO_MISSING, DECODE_ERROR, EMPTY_AUDIO_FILE, NON_FINITE_SAMPLES, TOO_LONG,
                            TOO_SHORT, TRUNCATED_AUDIO)
from pipeline.records import Rejection

EMPTY_AFTER_NORMALIZATION = "empty_after_normalization"   # e.g. a transcript of emoji only
OOV_CHARACTERS = "oov_characters"                          # dev/test text with characters unseen in train
PROCESSING_ERROR = "processing_error"                      # unexpected exception while processing a row

REASONS_TEXT = (EMPTY_AFTER_NORMALIZATION, OOV_CHARACTERS)
REASONS_AUDIO = (AUDIO_MISSING, EMPTY_AUDIO_FILE, DECODE_ERROR, TRUNCATED_AUDIO, NON_FINITE_SAMPLES,
                 TOO_SHORT, TOO_LONG, PROCESSING_ERROR)

SCHEMA = pa.schema([
    ("utt_id", pa.string()),
    ("split", pa.string()),
    ("audio_uri", pa.string()),
    ("reason", pa.string()),
    ("detail", pa.string()),
])


def quarantine_table(rejections: Iterable[Rejection]) -> pa.Table:
    rows = sorted((r.to_dict() for r in rejections),
                  key=lambda r: (r["split"], r["utt_id"], r["reason"], r["audio_uri"], r["detail"]))
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def count_by_reason(rejections: Iterable[Rejection]) -> dict[str, int]:
    return dict(sorted(Counter(r.reason for r in rejections).items()))
