"""`lact-audio transcribe AUDIO...`: each file transcribed with one loaded model and rendered as
txt, json, srt or vtt, to stdout or as <output dir>/<name>.<format> (the Ray Data path for a whole
corpus is batch.py)."""

from __future__ import annotations

import sys

from jobs.inference.model import load
from jobs.tasks import ASR
from jobs.inference.transcriber import DecodeOptions, transcribe
from jobs.inference.writers import render
from pipeline import uri as uris
from pipeline.audio import AudioError
from pipeline.files import write_atomic


def transcribe_files(files: list[str], model_uri: str, data_uri: str | None, options: DecodeOptions,
                     fmt: str, output_dir: str | None) -> int:
    """Transcribe `files` in order; returns how many could not be read (each named on stderr)."""
    model = load(model_uri, data_uri).require(ASR)
    tokenizer = model.text_tokenizer()
    if output_dir:
        uris.ensure_writable(uris.absolute(output_dir), "--output-dir")
    failed, used = 0, set()
    for uri in files:
        try:
            result = transcribe(model, uri, options, tokenizer=tokenizer)
        except AudioError as exc:
            print(f"lact-audio transcribe: {uri}: {exc}", file=sys.stderr)
            failed += 1
            continue
        text = render(result, fmt)
        if output_dir:
            target = output_path(uris.absolute(output_dir), uri, fmt, used)
            write_atomic(target, text.encode())
            print(target)
        else:
            sys.stdout.write(text)
            sys.stdout.flush()
    return failed


def output_path(output_dir: str, uri: str, fmt: str, used: set[str]) -> str:
    """<dir>/<file name without extension>.<fmt>; a repeated name gets -2, -3, ..."""
    stem = uri.rstrip("/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    name, n = f"{stem}.{fmt}", 1
    while name in used:
        n += 1
        name = f"{stem}-{n}.{fmt}"
    used.add(name)
    return uris.join(output_dir, name)
