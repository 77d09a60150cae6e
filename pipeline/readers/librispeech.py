"""LibriSpeech layout: ROOT/SPLIT/SPEAKER/CHAPTER/SPEAKER-CHAPTER-UTT.flac + SPEAKER-CHAPTER.trans.txt.

Each trans.txt line is `UTTID TRANSCRIPT IN UPPER CASE`. Reader-level defects (nothing here opens
audio) become Rejections:
    missing_transcript  audio file without a transcript line (or the chapter has no trans.txt)
    empty_transcript    a line with an id and no text
    malformed_row       a line whose first token is not SPEAKER-CHAPTER-UTT of its chapter
    duplicate_utt_id    an id listed more than once; every occurrence is rejected, because the
                        reader cannot tell which transcript belongs to the audio
    missing_audio       a transcript line whose audio file does not exist
Audio is `.flac`; `.wav` is accepted as well (some converted LibriSpeech copies ship WAV); when
both exist for one id the FLAC is used.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator

from pipeline.errors import UserError
from pipeline.readers.listing import files_below, open_root, subdirectories, to_uri
from pipeline.records import Rejection, Utterance

CORPUS = "librispeech"
AUDIO_EXTENSIONS = (".flac", ".wav")  # preference order
SPLIT_NAME = re.compile(r"^(train|dev|test)(-[a-z]+)?(-\d+)?$")
UTT_ID = re.compile(r"^(\d+)-(\d+)-(\d+)$")


def read_librispeech(root_uri: str, splits: list[str] | None = None) -> Iterator[Utterance | Rejection]:
    """Records of the requested splits (default: every split under root), split by split.

    Raises UserError, before yielding anything, when the root is missing, holds no LibriSpeech
    split, or a requested split is absent.
    """
    fs, root = open_root(root_uri, "LibriSpeech root")
    present = {name: path for name, path in subdirectories(fs, root).items() if SPLIT_NAME.match(name)}
    if not present:
        inner = [name for name, path in subdirectories(fs, root).items()
                 if any(SPLIT_NAME.match(sub) for sub in subdirectories(fs, path))]
        hint = f"; did you mean {root_uri.rstrip('/')}/{inner[0]}?" if inner else ""
        raise UserError(
            f"not a LibriSpeech layout: {root_uri} has no split directories such as train-clean-100/, "
            f"dev-clean/, test-clean/ (expected ROOT/SPLIT/SPEAKER/CHAPTER/SPEAKER-CHAPTER-UTT.flac){hint}"
        )
    if splits is None:
        chosen = sorted(present)
    else:
        missing = [s for s in splits if s not in present]
        if missing:
            raise UserError(
                f"LibriSpeech split(s) {', '.join(missing)} not found in {root_uri}; "
                f"available: {', '.join(sorted(present))}"
            )
        chosen = list(dict.fromkeys(splits))
    return _records(fs, {split: present[split] for split in chosen})


def _records(fs, split_paths: dict[str, str]) -> Iterator[Utterance | Rejection]:
    for split, split_path in split_paths.items():
        yield from _read_split(fs, split, split_path)


def _read_split(fs, split: str, split_path: str) -> Iterator[Utterance | Rejection]:
    audio, transcripts = _split_files(fs, split_path)

    def audio_uri(rel: str) -> str:
        return to_uri(fs, f"{split_path}/{rel}")

    # Pass 1: parse every transcript line of the split, so duplicates are known before yielding.
    lines, rejections = _transcript_lines(fs, split, split_path, transcripts)
    counts = Counter(utt_id for utt_id, _, _ in lines)
    listed = set(counts)
    records: list[Utterance | Rejection] = list(rejections)
    for utt_id, text, where in lines:
        uri = audio_uri(audio[utt_id]) if utt_id in audio else ""
        if counts[utt_id] > 1:
            records.append(Rejection(utt_id, uri, split, "duplicate_utt_id",
                                     f"{utt_id} is listed {counts[utt_id]} times (this one at {where})"))
        elif not uri:
            speaker, chapter, _ = utt_id.split("-")
            records.append(Rejection(utt_id, audio_uri(f"{speaker}/{chapter}/{utt_id}.flac"), split,
                                     "missing_audio", f"{where} has a transcript but no audio file"))
        elif not text:
            records.append(Rejection(utt_id, uri, split, "empty_transcript", f"{where} has no text"))
        else:
            records.append(Utterance(utt_id=utt_id, audio_uri=uri, text=text, speaker=utt_id.split("-")[0],
                                     split=split, language="en", corpus=CORPUS))
    for utt_id, rel in audio.items():
        if utt_id in listed:
            continue
        speaker, chapter = rel.split("/")[:2]
        why = ("no transcript line for it in " + transcripts[f"{speaker}/{chapter}"]
               if f"{speaker}/{chapter}" in transcripts else f"chapter {speaker}/{chapter} has no trans.txt")
        records.append(Rejection(utt_id, audio_uri(rel), split, "missing_transcript", why))
    records.sort(key=lambda r: (r.utt_id, isinstance(r, Rejection)))
    yield from records


def _split_files(fs, split_path: str) -> tuple[dict[str, str], dict[str, str]]:
    """The split's audio (utt id -> relative path, FLAC preferred) and its transcripts
    ("SPEAKER/CHAPTER" -> relative trans.txt path)."""
    audio: dict[str, str] = {}
    transcripts: dict[str, str] = {}
    for rel in files_below(fs, split_path):
        parts = rel.split("/")
        if len(parts) != 3:
            continue  # README, SPEAKERS.TXT or stray files: not part of the layout
        speaker, chapter, name = parts
        if name == f"{speaker}-{chapter}.trans.txt":
            transcripts[f"{speaker}/{chapter}"] = rel
            continue
        stem, dot, ext = name.rpartition(".")
        if dot and f".{ext.lower()}" in AUDIO_EXTENSIONS and stem.startswith(f"{speaker}-{chapter}-"):
            previous = audio.get(stem)
            if previous is None or _preference(rel) < _preference(previous):
                audio[stem] = rel
    return audio, transcripts


def _transcript_lines(fs, split: str, split_path: str,
                      transcripts: dict[str, str]) -> tuple[list[tuple[str, str, str]], list[Rejection]]:
    """Every well-formed transcript line as (utt id, text, where), and a malformed_row Rejection
    for each line that is not `SPEAKER-CHAPTER-UTT TEXT` of its chapter."""
    lines: list[tuple[str, str, str]] = []
    rejections: list[Rejection] = []
    for chapter_key, rel in sorted(transcripts.items()):
        speaker, chapter = chapter_key.split("/")
        raw = fs.cat_file(f"{split_path}/{rel}")
        for number, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), start=1):
            where = f"{split}/{rel}:{number}"
            if not line.strip():
                continue
            utt_id, _, text = line.strip().partition(" ")
            match = UTT_ID.match(utt_id)
            if not match or match.group(1) != speaker or match.group(2) != chapter:
                rejections.append(Rejection(
                    utt_id=where, audio_uri="", split=split, reason="malformed_row",
                    detail=f"expected '{speaker}-{chapter}-NNNN TRANSCRIPT', got {line[:120]!r}",
                ))
                continue
            lines.append((utt_id, text.strip(), where))
    return lines, rejections


def _preference(rel: str) -> int:
    return AUDIO_EXTENSIONS.index("." + rel.rsplit(".", 1)[-1].lower())
