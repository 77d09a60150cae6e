"""Common Voice layout: ROOT/LANG/clips/*.mp3 + ROOT/LANG/{train,dev,test,validated,...}.tsv.

ROOT may also be one language directory itself (ROOT/clips + ROOT/*.tsv; the language is the
directory name). Each TSV has a header naming its columns; only `path` and `sentence` are
required (`client_id` gives the speaker), so old (`accent`) and new (`accents`, `sentence_id`,
`locale`, ...) releases both read. Utterance ids are "LANG/<clip name without extension>".

Reader-level defects (no audio is opened) become Rejections:
    malformed_row       a row with the wrong number of fields, undecodable bytes or no path;
                        its utt_id is the row key "LANG/SPLIT.tsv:LINE", as its fields are untrusted
    empty_transcript    a row with an empty sentence
    duplicate_utt_id    a clip listed more than once across the chosen splits of a language;
                        every occurrence is rejected (it would leak between splits, or its
                        sentence is ambiguous)
    missing_audio       a row whose clip does not exist under clips/
Clips without a row are not defects: real releases keep unvalidated clips in clips/ too.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterator

from pipeline.errors import UserError
from pipeline.readers.listing import open_root, subdirectories, to_uri
from pipeline.records import Rejection, Utterance

CORPUS = "commonvoice"
DEFAULT_SPLITS = ("train", "dev", "test")
REQUIRED_COLUMNS = ("path", "sentence")


def read_commonvoice(
    root_uri: str, splits: list[str] | None = None, languages: list[str] | None = None
) -> Iterator[Utterance | Rejection]:
    """Records of the chosen languages (default all) and splits (default train/dev/test, or
    `validated` when a release has none of those), language by language, split by split.

    Raises UserError, before yielding anything, when the root is missing, holds no Common Voice
    language directory, a requested language or split is absent everywhere, or a TSV lacks the
    path/sentence columns.
    """
    fs, root = open_root(root_uri, "Common Voice root")
    language_dirs = _language_dirs(fs, root)
    if not language_dirs:
        inner = [name for name, path in subdirectories(fs, root).items() if _language_dirs(fs, path)]
        hint = f"; did you mean {root_uri.rstrip('/')}/{inner[0]}?" if inner else ""
        raise UserError(
            f"not a Common Voice layout: {root_uri} has no LANG/ directory with clips/ and *.tsv files "
            f"(expected ROOT/LANG/clips/*.mp3 and ROOT/LANG/train.tsv, dev.tsv, test.tsv){hint}"
        )
    if languages:
        missing = [lang for lang in languages if lang not in language_dirs]
        if missing:
            raise UserError(f"Common Voice language(s) {', '.join(missing)} not found in {root_uri}; "
                            f"available: {', '.join(sorted(language_dirs))}")
        language_dirs = {lang: language_dirs[lang] for lang in dict.fromkeys(languages)}
    tsvs = {lang: _tsv_files(fs, path) for lang, path in language_dirs.items()}
    available = set().union(*tsvs.values())
    if splits is None:
        chosen = [s for s in DEFAULT_SPLITS if s in available] or (["validated"] if "validated" in available else [])
        if not chosen:
            raise UserError(f"Common Voice root {root_uri} has no train/dev/test/validated .tsv; "
                            f"found: {', '.join(sorted(available)) or 'none'}")
    else:
        chosen = list(dict.fromkeys(splits))
        missing = [s for s in chosen if s not in available]
        if missing:
            raise UserError(f"Common Voice split(s) {', '.join(missing)} not found in {root_uri} "
                            f"(no {', '.join(s + '.tsv' for s in missing)}); available: {', '.join(sorted(available))}")
    # Headers are checked up front so a wrong file fails before any record is yielded.
    tables = {
        lang: {split: _read_tsv(fs, f"{language_dirs[lang]}/{split}.tsv", f"{lang}/{split}.tsv")
               for split in chosen if split in tsvs[lang]}
        for lang in language_dirs
    }
    return _records(fs, language_dirs, tables)


def _language_dirs(fs, root: str) -> dict[str, str]:
    if _looks_like_language(fs, root):
        return {root.rsplit("/", 1)[-1]: root}
    return {name: path for name, path in sorted(subdirectories(fs, root).items()) if _looks_like_language(fs, path)}


def _looks_like_language(fs, path: str) -> bool:
    names = {entry.rstrip("/").rsplit("/", 1)[-1] for entry in fs.ls(path, detail=False)}
    return "clips" in names and any(name.endswith(".tsv") for name in names)


def _tsv_files(fs, path: str) -> set[str]:
    return {entry.rsplit("/", 1)[-1][: -len(".tsv")] for entry in fs.ls(path, detail=False) if entry.endswith(".tsv")}


def _read_tsv(fs, path: str, name: str) -> tuple[list[str], list[tuple[int, bytes]]]:
    """(header, [(line number, raw line bytes)]); rows are decoded later, one at a time."""
    raw_lines = fs.cat_file(path).splitlines()
    if not raw_lines:
        raise UserError(f"Common Voice file {name} is empty (expected a header with path and sentence)")
    header = raw_lines[0].decode("utf-8", errors="replace").lstrip("\ufeff").split("\t")
    header = [column.strip() for column in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise UserError(f"not a Common Voice TSV: {name} has no column(s) {', '.join(missing)} "
                        f"(header: {', '.join(header)})")
    return header, [(number, line) for number, line in enumerate(raw_lines[1:], start=2) if line.strip()]


def _records(fs, language_dirs, tables) -> Iterator[Utterance | Rejection]:
    for lang, by_split in tables.items():
        clips_dir = f"{language_dirs[lang]}/clips"
        clips = {entry.rsplit("/", 1)[-1] for entry in fs.ls(clips_dir, detail=False)}
        parsed: list[tuple[str, dict]] = []   # (split, row)
        records: list[Utterance | Rejection] = []
        for split, (header, rows) in by_split.items():
            for number, raw in rows:
                row_key = f"{lang}/{split}.tsv:{number}"
                row, problem = _parse_row(raw, header)
                if problem:
                    records.append(Rejection(row_key, "", split, "malformed_row", problem))
                else:
                    row["_where"] = row_key
                    parsed.append((split, row))
        counts = Counter(row["path"] for _, row in parsed)
        for split, row in parsed:
            clip = row["path"]
            utt_id = f"{lang}/{clip.rsplit('.', 1)[0]}"
            uri = to_uri(fs, f"{clips_dir}/{clip}")
            if counts[clip] > 1:
                where = [f"{s}.tsv" for s, r in parsed if r["path"] == clip]
                records.append(Rejection(utt_id, uri, split, "duplicate_utt_id",
                                         f"{clip} is listed {counts[clip]} times ({', '.join(where)}); this at {row['_where']}"))
            elif clip not in clips:
                records.append(Rejection(utt_id, uri, split, "missing_audio",
                                         f"{row['_where']} names {clip}, which is not in {lang}/clips/"))
            elif not row["sentence"].strip():
                records.append(Rejection(utt_id, uri, split, "empty_transcript", f"{row['_where']} has no sentence"))
            else:
                records.append(Utterance(utt_id=utt_id, audio_uri=uri, text=row["sentence"].strip(),
                                         speaker=row.get("client_id", "") or "", split=split,
                                         language=lang, corpus=CORPUS))
        split_order = {split: i for i, split in enumerate(by_split)}
        records.sort(key=lambda r: (split_order[r.split], r.utt_id, isinstance(r, Rejection)))
        yield from records


def _parse_row(raw: bytes, header: list[str]) -> tuple[dict, str]:
    """(row, "") or ({}, what is wrong). Common Voice TSVs are unquoted: quotes are text."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return {}, f"not UTF-8: {exc}"
    fields = next(csv.reader([line], delimiter="\t", quoting=csv.QUOTE_NONE))
    if len(fields) != len(header):
        return {}, f"{len(fields)} fields, header has {len(header)}: {line[:120]!r}"
    row = dict(zip(header, fields))
    clip = row["path"].strip()
    if not clip or "/" in clip or clip.startswith("."):
        return {}, f"unusable clip path {row['path']!r}"
    row["path"] = clip
    return row, ""
