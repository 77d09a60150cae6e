"""The promotion rule and where decisions are kept.

    <output>/<date>/decision.json    one per run (a later run the same day: <date>_2, _3, ...)
    <output>/state.json              the data (split content hashes) of the last finished run,
                                     written last, so a failed run is retried by the next one
"""

from __future__ import annotations

from datetime import datetime, timezone

from pipeline import uri as uris
from pipeline.manifest import read_json, write_json

PROMOTED, KEPT, NO_NEW_DATA = "promoted", "kept", "no-new-data"
STATE = "state.json"
DECISION = "decision.json"


def decide(champion_score: float | None, challenger_score: float, margin: float) -> tuple[str, str]:
    """(action, reason). Scores are lower-is-better; no champion yet: the challenger becomes it."""
    if champion_score is None:
        return PROMOTED, "no champion yet: the challenger becomes the first champion"
    gain = champion_score - challenger_score
    if gain >= margin:
        return PROMOTED, f"challenger better by {gain:.6g} >= margin {margin:g}"
    return KEPT, f"challenger better by {gain:.6g} < margin {margin:g}"


def read_state(output: str) -> dict | None:
    try:
        return read_json(uris.join(output, STATE))
    except FileNotFoundError:
        return None


def write_state(output: str, data: dict, decision_uri: str) -> None:
    write_json(uris.join(output, STATE), {"data": data, "decision": decision_uri})


def new_decision_uri(output: str, now: datetime | None = None) -> str:
    """<output>/<UTC date>/decision.json, or <date>_N/ when that day already has one."""
    day = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%d")
    folder, n = day, 1
    while uris.exists(uris.join(output, folder, DECISION)):
        n += 1
        folder = f"{day}_{n}"
    return uris.join(output, folder, DECISION)
