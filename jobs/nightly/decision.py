"""The promotion rule and where decisions are kept.

    <output>/<date>/decision.json    one per run (a later run the same day: <date>_2, _3, ...),
                                     created exclusively: two runs never share a folder
    <output>/state.json              the data (split content hashes) of the last finished run,
                                     written last, so a failed run is retried by the next one
    <output>/test_split.json         the frozen test split (jobs/nightly/frozen.py)
    <output>/nightly.lock            the lease of the running night (jobs/nightly/lock.py)
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

from jobs.evaluation.paired_bootstrap import paired_bootstrap
from pipeline import uri as uris
from pipeline.files import read_json, write_json

PROMOTED, KEPT, NO_NEW_DATA, FAILED, ROLLED_BACK = "promoted", "kept", "no-new-data", "failed", "rolled-back"
STATE = "state.json"
DECISION = "decision.json"


def decide(champion: tuple[list, list] | None, challenger: tuple[list, list], margin: float, *,
           confidence: float = 0.95, resamples: int = 10000, seed: int = 0) -> tuple[str, str, dict | None]:
    """(action, reason, interval) from per-utterance (errors, totals) of both models on the same
    utterances in the same order. Scores are lower-is-better ratios of sums (CER, bits/token).

    Promoted only when the challenger gains at least `margin` AND the paired bootstrap interval of
    the gain (champion - challenger) lies wholly above 0: a tie, or a gain that the choice of test
    utterances could explain, keeps the champion. No champion yet: the challenger becomes it."""
    if champion is None:
        return PROMOTED, "no champion yet: the challenger becomes the first champion", None
    (champ_errors, totals), (chall_errors, chall_totals) = champion, challenger
    if list(totals) != list(chall_totals):
        raise ValueError("champion and challenger were scored on different utterances")
    interval = paired_bootstrap(champ_errors, chall_errors, totals, resamples=resamples, seed=seed,
                                confidence=confidence)
    gain, low, high = interval["difference"], interval["low"], interval["high"]
    described = (f"gain {gain:.6g}, {confidence:.0%} interval [{low:.6g}, {high:.6g}] "
                 f"over {interval['units']} utterances")
    if gain >= margin and low > 0:
        return PROMOTED, f"challenger better: {described}; >= margin {margin:g} and the interval excludes 0", interval
    why = "below the margin" if gain < margin else "the interval does not exclude 0"
    return KEPT, f"champion kept: {described} ({why}; margin {margin:g})", interval


def failure_signature(error: str) -> str:
    """What stays the same when a night fails the same way again: the error without its numbers,
    versions, hashes, dates and paths' run-specific parts."""
    text = re.sub(r"[0-9a-f]{12,}", "#", error)
    text = re.sub(r"\d+(\.\d+)*", "#", text)
    return text[:300]


def read_state(output: str) -> dict | None:
    try:
        return read_json(uris.join(output, STATE))
    except FileNotFoundError:
        return None


def write_state(output: str, data: dict, decision_uri: str) -> None:
    write_json(uris.join(output, STATE), {"data": data, "decision": decision_uri})


def write_new_decision(output: str, decision: dict, now: datetime | None = None) -> str:
    """Write decision.json into a new <output>/<UTC date>[_N]/ folder, claimed by an exclusive create
    (O_EXCL locally, a conditional PUT on S3): two runs never write into the same folder."""
    day = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%d")
    for n in range(1, 10000):
        uri = uris.join(output, day if n == 1 else f"{day}_{n}", DECISION)
        decision["decision_file"] = uri
        fs, path = uris.filesystem(uri)
        if not uris.is_remote(uri):
            fs.makedirs(fs._parent(path), exist_ok=True)
        try:
            with fs.open(path, "xb") as f:
                text = json.dumps(decision, indent=2, sort_keys=True, ensure_ascii=False, default=str)
                f.write(text.encode() + b"\n")
            return uri
        except FileExistsError:
            continue
        except OSError as exc:   # S3: 412 Precondition Failed when the key exists
            if "PreconditionFailed" in str(exc) or "412" in str(exc):
                continue
            raise
    raise RuntimeError(f"no free decision folder for {day} under {output}")


def all_decisions(output: str) -> list[dict]:
    """Every decision.json under `output`, oldest first (by the date recorded in it)."""
    fs, path = uris.filesystem(output)
    try:
        files = fs.glob(f"{path.rstrip('/')}/*/{DECISION}")
    except FileNotFoundError:
        return []
    found = []
    for file in files:
        with fs.open(file, "rb") as f:
            found.append(json.loads(f.read()))
    return sorted(found, key=lambda d: (d.get("date", ""), _folder_number(d.get("decision_file", ""))))


def _folder_number(decision_file: str) -> int:
    """N of a <date>_N/ folder (1 for <date>/): nights started in the same second keep their order
    (as text, "_10" would sort before "_9")."""
    folder = decision_file.rsplit("/", 2)[-2] if decision_file.count("/") >= 1 else ""
    suffix = folder.rpartition("_")[2] if "_" in folder else "1"
    return int(suffix) if suffix.isdigit() else 0


def repeated_failure(previous: dict | None, signature: str) -> bool:
    """The same failure as the night before (the latest decision)."""
    return bool(previous and previous.get("action") == FAILED and previous.get("failure_signature") == signature)
