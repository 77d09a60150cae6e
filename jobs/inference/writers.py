"""Transcript -> txt | json | srt | vtt text."""

from __future__ import annotations

import json

FORMATS = ("txt", "json", "srt", "vtt")


def _clock(seconds: float, separator: str) -> str:
    ms = int(round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{separator}{ms:03d}"


def to_txt(t) -> str:
    return t.text + "\n"


def to_json(t) -> str:
    return json.dumps(t.to_dict(), ensure_ascii=False, indent=2) + "\n"


def to_srt(t) -> str:
    blocks = [f"{i}\n{_clock(s.start, ',')} --> {_clock(s.end, ',')}\n{s.text}\n"
              for i, s in enumerate(t.segments, 1)]
    return "\n".join(blocks)


def to_vtt(t) -> str:
    blocks = [f"{_clock(s.start, '.')} --> {_clock(s.end, '.')}\n{s.text}\n" for s in t.segments]
    return "WEBVTT\n\n" + "\n".join(blocks)


WRITERS = {"txt": to_txt, "json": to_json, "srt": to_srt, "vtt": to_vtt}


def render(transcript, fmt: str) -> str:
    return WRITERS[fmt](transcript)
