"""synthesize_corpus: plan a synthetic corpus from a seed, render it on a process pool, write
the layout's text files, and record what was made in ROOT/SYNTHETIC.json.

Re-running with the same settings on a finished corpus does nothing; other content in the
output directory is never overwritten unless overwrite=True.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace

from pipeline import uri as uris
from pipeline.errors import UserError
from pipeline.files import write_json
from pipeline.synthetic.commonvoice import TRAINING_SPLIT as COMMONVOICE_TRAINING_SPLIT
from pipeline.synthetic.commonvoice import commonvoice_session, commonvoice_text_files, plan_commonvoice
from pipeline.synthetic.conditions import TABLE as CONDITIONS_TABLE
from pipeline.synthetic.conditions import conditions_table, draw_conditions, held_out_combinations
from pipeline.synthetic.engines import require_engines
from pipeline.synthetic.espeak import espeak_version
from pipeline.synthetic.festival import festival_version
from pipeline.synthetic.languages import LANGUAGES
from pipeline.synthetic.librispeech import TRAINING_SPLIT as LIBRISPEECH_TRAINING_SPLIT
from pipeline.synthetic.librispeech import librispeech_session, librispeech_text_files, plan_librispeech
from pipeline.synthetic.plan import Clip, Voicing
from pipeline.synthetic.render import init_worker, render_clips
from pipeline.synthetic.speakers import ENGINES, FESTIVAL

LAYOUTS = ("librispeech", "commonvoice")
MARKER = "SYNTHETIC.json"
GENERATOR_VERSION = 2          # bump when the plan or the rendering changes what a seed produces
BATCH = 16                     # clips per pool task
IN_PROCESS_BELOW = 48          # tiny corpora: starting worker processes costs more than it saves
MAX_CHAPTER_MINUTES = 240      # longer chapters than the longest long-form evaluation needs


def synthesize_corpus(
    layout: str,
    out_uri: str,
    hours: float | None = 1.0,
    languages: list[str] | None = None,
    seed: int = 0,
    utterances_per_split: int | None = None,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = False,
    conditions: bool = False,
    voicing: Voicing = Voicing(),
) -> dict:
    """Write a synthetic corpus and return its summary.

    hours: total audio (estimated from the text; the summary reports what was measured), or
    utterances_per_split: exactly that many utterances per split (and per language), for tests.
    conditions: record each session in drawn acoustic conditions (pipeline/synthetic/conditions.py).
    voicing: engines and chapter lengths (plan.Voicing; its defaults: espeak-ng, short chapters).
    Summary keys: layout, out_uri, seed, languages, hours, utterances, splits {name: {utterances,
    speakers, hours}}, speakers {id: voice settings}, elapsed_seconds, workers, skipped, and with
    conditions: conditions {table, held_out_combinations, sessions}.
    """
    if layout not in LAYOUTS:
        raise UserError(f"unknown layout {layout!r}; expected one of: {', '.join(LAYOUTS)}")
    languages = _check_languages(layout, languages)
    hours = _check_size(hours, utterances_per_split)
    _check_voicing(voicing, utterances_per_split, languages)
    workers = workers or len(os.sched_getaffinity(0))
    require_engines(voicing.engines)
    out_uri = uris.absolute(out_uri)
    settings = _settings(layout, hours, utterances_per_split, languages, seed, conditions, voicing)
    started = time.perf_counter()
    previous = _previous_run(out_uri, settings, overwrite)
    if previous is not None:
        return {**previous, "out_uri": out_uri, "elapsed_seconds": round(time.perf_counter() - started, 3), "workers": 0, "skipped": True}
    uris.ensure_writable(out_uri, "synthetic corpus output")
    fs, root = uris.filesystem(out_uri)
    marker_uri = uris.join(out_uri, MARKER)
    write_json(marker_uri, {"settings": settings, "complete": False}, indent=1)

    if layout == "librispeech":
        clips, speakers = plan_librispeech(hours, utterances_per_split, seed, voicing)
    else:
        clips, speakers = plan_commonvoice(hours, utterances_per_split, languages, seed, voicing)
    conditions_summary = None
    if conditions:
        clips, table, conditions_summary = with_conditions(layout, clips, seed)
        fs.pipe_file(f"{root.rstrip('/')}/{CONDITIONS_TABLE}", table.encode("utf-8"))
    seconds = _render(out_uri, clips, workers, progress)
    _write_text_files(out_uri, layout, clips, seconds, seed)

    summary = _summary(layout, seed, languages, settings, clips, speakers, seconds)
    if conditions_summary is not None:
        summary["conditions"] = conditions_summary
    write_json(marker_uri, summary, indent=1)
    return {**summary, "out_uri": out_uri, "elapsed_seconds": round(time.perf_counter() - started, 3),
            "workers": workers if len(clips) >= IN_PROCESS_BELOW else 1, "skipped": False}


def _write_text_files(out_uri: str, layout: str, clips: list[Clip], seconds: dict[str, float], seed: int) -> None:
    """The layout's transcripts and listings, once the clips' lengths are measured."""
    if layout == "librispeech":
        text_files = librispeech_text_files(clips, seconds)
    else:
        text_files = commonvoice_text_files(clips, seconds, seed)
    fs, root = uris.filesystem(out_uri)
    for rel, text in sorted(text_files.items()):
        fs.pipe_file(f"{root.rstrip('/')}/{rel}", text.encode("utf-8"))


def _check_size(hours: float | None, utterances_per_split: int | None) -> float | None:
    """The corpus's hours (None when sized by utterances_per_split) once both are usable."""
    if utterances_per_split is not None:
        if utterances_per_split < 1:
            raise UserError(f"utterances per split must be at least 1, got {utterances_per_split}")
        return None
    if hours is None or not hours > 0:
        raise UserError(f"--hours must be a positive number, got {hours}")
    if hours > 1000:
        raise UserError(f"--hours {hours} is more than this synthesiser is meant for (at most 1000)")
    return hours


def _summary(layout: str, seed: int, languages: list[str], settings: dict, clips: list[Clip],
             speakers: dict, seconds: dict[str, float]) -> dict:
    """What the marker records of a finished corpus. No paths or timings: the same seed gives a
    byte-identical tree wherever it is written."""
    splits: dict[str, dict] = {}
    for clip in clips:
        key = clip.split if layout == "librispeech" else f"{clip.speaker.language}/{clip.split}"
        entry = splits.setdefault(key, {"utterances": 0, "speakers": len(speakers[key]), "seconds": 0.0})
        entry["utterances"] += 1
        entry["seconds"] += seconds[clip.utt_id]
    for entry in splits.values():
        entry["hours"] = round(entry.pop("seconds") / 3600.0, 4)
    return {
        "layout": layout, "seed": seed, "languages": languages, "settings": settings,
        "hours": round(sum(seconds.values()) / 3600.0, 4), "utterances": len(clips), "splits": splits,
        "speakers": {s.speaker_id: {"split": split, **s.to_dict()} for split, group in speakers.items() for s in group},
        "complete": True,
    }


def _check_languages(layout: str, languages: list[str] | None) -> list[str]:
    if layout == "librispeech":
        if languages and list(languages) != ["en"]:
            raise UserError(f"the LibriSpeech layout is English only; got --languages {','.join(languages)}")
        return ["en"]
    languages = list(dict.fromkeys(languages or ["en", "de", "fr", "es"]))
    unknown = [lang for lang in languages if lang not in LANGUAGES]
    if unknown:
        raise UserError(f"no synthetic voice/word list for language(s) {', '.join(unknown)}; "
                        f"available: {', '.join(LANGUAGES)}")
    return languages


def _settings(layout: str, hours: float | None, utterances_per_split: int | None, languages: list[str],
              seed: int, conditions: bool, voicing: Voicing) -> dict:
    """What a corpus is made from; a finished corpus with the same settings is not redone."""
    settings = {"layout": layout, "hours": hours, "utterances_per_split": utterances_per_split,
                "languages": languages, "seed": seed, "generator_version": GENERATOR_VERSION,
                "espeak_ng": espeak_version()}
    # Only what differs from the default corpus is added, so the default's marker stays as it was.
    if conditions:
        settings["conditions"] = True
    if voicing != Voicing():
        settings["voicing"] = {"engines": list(voicing.engines), "held_out_engines": list(voicing.held_out_engines),
                               "minutes_per_chapter": voicing.minutes_per_chapter,
                               "test_minutes_per_chapter": voicing.test_minutes_per_chapter}
        if voicing.test_hours is not None:
            settings["voicing"]["test_hours"] = voicing.test_hours
    if FESTIVAL in voicing.engines:
        settings["festival"] = festival_version()
    return settings


def _check_voicing(voicing: Voicing, utterances_per_split: int | None, languages: list[str]) -> None:
    for flag, minutes in (("--minutes-per-chapter", voicing.minutes_per_chapter),
                          ("--test-minutes-per-chapter", voicing.test_minutes_per_chapter)):
        if minutes is None:
            continue
        if utterances_per_split is not None:
            raise UserError(f"{flag} sizes chapters from --hours; it cannot be used with --utterances-per-split")
        if not 0 < minutes <= MAX_CHAPTER_MINUTES:
            raise UserError(f"{flag} must be more than 0 and at most {MAX_CHAPTER_MINUTES}, got {minutes}")
    if voicing.test_hours is not None:
        if utterances_per_split is not None:
            raise UserError("--test-hours sizes the test split in hours; it cannot be used with --utterances-per-split")
        if not 0 < voicing.test_hours <= 1000:
            raise UserError(f"--test-hours must be more than 0 and at most 1000, got {voicing.test_hours}")
    unknown = [engine for engine in voicing.engines + voicing.held_out_engines if engine not in ENGINES]
    if unknown:
        raise UserError(f"unknown engine(s) {', '.join(unknown)}; available: {', '.join(ENGINES)}")
    stray = [engine for engine in voicing.held_out_engines if engine not in voicing.engines]
    if stray:
        raise UserError(f"--held-out-engines {','.join(stray)} must also be in --engines ({','.join(voicing.engines)})")
    if set(voicing.held_out_engines) >= set(voicing.engines):
        raise UserError("every engine is held out: training would have no speaker; hold out fewer engines")
    if voicing.engines == (FESTIVAL,) and languages != ["en"]:
        raise UserError(f"Festival speaks English only; add espeak-ng to --engines for {','.join(languages)}")


def with_conditions(layout: str, clips: list[Clip], seed: int) -> tuple[list[Clip], str, dict]:
    """The clips with their session's drawn Conditions, the conditions table and its summary.

    Drawn from their own stream of the seed: the sentences and voices are those of the corpus
    without conditions.
    """
    if layout == "librispeech":
        session_of, training_split = librispeech_session, LIBRISPEECH_TRAINING_SPLIT
    else:
        session_of, training_split = (lambda clip: commonvoice_session(clip, seed)), COMMONVOICE_TRAINING_SPLIT
    by_clip = [session_of(clip) for clip in clips]
    sessions = list({session.key: session for session in by_clip}.values())
    rng = random.Random(f"conditions:{layout}:{seed}")
    held_out = held_out_combinations(rng)
    drawn = draw_conditions(sessions, training_split, rng, held_out)
    conditioned = [replace(clip, conditions=drawn[session.key]) for clip, session in zip(clips, by_clip)]
    per_split: dict[str, int] = {}
    for session in sessions:
        key = session.split if layout == "librispeech" else f"{session.speaker.language}/{session.split}"
        per_split[key] = per_split.get(key, 0) + 1
    summary = {"table": CONDITIONS_TABLE, "held_out_combinations": sorted(list(c) for c in held_out),
               "sessions": per_split}
    return conditioned, conditions_table(sessions, drawn, held_out), summary


def _previous_run(out_uri: str, settings: dict, overwrite: bool) -> dict | None:
    """The summary of a finished run with the same settings, else None once the output is ready.

    Only a directory holding our marker is ever emptied (--overwrite); anything else that is not
    empty is refused, so a mistyped --out cannot delete a user's files.
    """
    fs, root = uris.filesystem(out_uri)
    fs.invalidate_cache()
    if not fs.exists(root):
        return None
    if not fs.isdir(root):
        raise UserError(f"output {out_uri} is a file, not a directory")
    marker = f"{root.rstrip('/')}/{MARKER}"
    contents = [p for p in fs.ls(root, detail=False) if not p.rstrip("/").rsplit("/", 1)[-1].startswith(".write-probe")]
    if not contents:
        return None
    if not fs.exists(marker):
        raise UserError(f"output {out_uri} is not empty and is not a synthetic corpus (no {MARKER}); "
                        "choose an empty or new directory")
    previous = json.loads(fs.cat_file(marker))
    if overwrite:
        for path in contents:
            fs.rm(path, recursive=True)
        fs.invalidate_cache()
        return None
    if previous.get("settings") == settings:
        # Finished: nothing to do. Interrupted: render again over it (same settings, same files).
        return previous if previous.get("complete") else None
    raise UserError(f"output {out_uri} holds a synthetic corpus made with other settings "
                    f"({_differences(previous.get('settings', {}), settings)}); pass --overwrite to replace it")


def _differences(old: dict, new: dict) -> str:
    return ", ".join(f"{key} {old.get(key)!r} -> {new.get(key)!r}" for key in new if old.get(key) != new.get(key))


def _render(out_uri: str, clips, workers: int, progress: bool) -> dict[str, float]:
    from tqdm import tqdm

    bar = tqdm(total=len(clips), unit="utt", desc="synthesising", disable=not progress)
    seconds: dict[str, float] = {}
    batches = [clips[i:i + BATCH] for i in range(0, len(clips), BATCH)]
    try:
        if workers <= 1 or len(clips) < IN_PROCESS_BELOW:
            for batch in batches:
                seconds.update(render_clips(out_uri, batch))
                bar.update(len(batch))
        else:
            # spawn, not fork: the caller may hold threads (Ray, s3fs event loop) that fork would copy broken.
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(workers, mp_context=context, initializer=init_worker) as pool:
                futures = [pool.submit(render_clips, out_uri, batch) for batch in batches]
                for future in as_completed(futures):
                    done = future.result()
                    seconds.update(done)
                    bar.update(len(done))
    finally:
        bar.close()
    return seconds
