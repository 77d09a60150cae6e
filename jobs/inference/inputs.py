"""AUDIO arguments -> audio URIs: files, folders (searched recursively), globs, s3:// URIs.

An argument that names nothing is not fatal: it comes back as a problem (one line for stderr),
and the other arguments are still transcribed.
"""

from __future__ import annotations

import glob as globlib

from pipeline import uri as uris

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".aiff", ".aif", ".au")
_GLOB_CHARS = "*?["


def is_audio(name: str) -> bool:
    return name.lower().endswith(AUDIO_EXTENSIONS)


def _expand_one(arg: str) -> list[str]:
    """Files the argument names (a file is taken whatever its extension; folders only give audio)."""
    if not uris.is_remote(arg) and any(c in arg for c in _GLOB_CHARS):
        return sorted(uris.absolute(p) for p in globlib.glob(arg, recursive=True) if is_audio(p))
    target = uris.absolute(arg)
    fs, path = uris.filesystem(target)
    if any(c in arg for c in _GLOB_CHARS):      # s3://bucket/prefix/*.flac
        return sorted(_with_scheme(target, p) for p in fs.glob(path) if is_audio(p))
    if fs.isdir(path):
        return sorted(_with_scheme(target, p) for p in fs.find(path) if is_audio(p))
    if fs.exists(path):
        return [target]
    return []


def _with_scheme(original: str, path: str) -> str:
    return f"s3://{path.lstrip('/')}" if original.startswith("s3://") else path


def expand(args: list[str]) -> tuple[list[str], list[str]]:
    """-> (audio URIs in argument order, without repeats; problems: one line each)."""
    found, problems, seen = [], [], set()
    for arg in args:
        try:
            files = _expand_one(arg)
        except (OSError, ValueError) as exc:
            problems.append(f"{arg}: cannot list: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
            continue
        if not files:
            problems.append(f"{arg}: no such file, or no audio files in it")
        for f in files:
            if f not in seen:
                seen.add(f)
                found.append(f)
    return found, problems


def relative_id(root: str, uri: str) -> str:
    """A file's id in a corpus: its path under the corpus root, without the extension."""
    fs, root_path = uris.filesystem(uris.absolute(root))
    _, path = uris.filesystem(uri)
    rel = path[len(root_path.rstrip("/")) + 1:] if path.startswith(root_path.rstrip("/") + "/") else path
    return rel.rsplit(".", 1)[0] if "." in rel.rsplit("/", 1)[-1] else rel
