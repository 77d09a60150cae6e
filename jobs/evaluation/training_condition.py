"""What a model was trained on, read from its training run's config: single utterances, or
sessions (`data.sessions`: a speaker's consecutive utterances joined into one row, so its fast
weights carried state across utterance boundaries while it learnt).

The evaluation scores a model in the condition it was trained for: chaining one utterance's end
state into the next (adaptation.py) is run only for a model whose training carried state across
utterances; a model trained on single utterances never saw a carried state.

Where the config is found:
- a checkpoint folder: the run file (lact_run.json, the resolved config) of its run folder,
  the checkpoint's parent (Ray Train writes RUN/checkpoint_N) or the folder itself;
- models:/, runs:/ URIs: the MLflow run's params (`data.sessions.min_seconds`, or
  `data.sessions` = None for single utterances).
When neither is found the condition is unknown, and the result says so.
"""

from __future__ import annotations

import json

from jobs.runs import tracking
from jobs.runs.storage import RUN_FILE
from pipeline import uri as uris

UTTERANCES, SESSIONS, UNKNOWN = "utterances", "sessions", "unknown"


def _from_config(config: dict, source: str) -> dict:
    sessions = ((config or {}).get("data") or {}).get("sessions")
    if sessions:
        return {"condition": SESSIONS, "source": source,
                "session_seconds": [float(sessions.get("min_seconds")), float(sessions.get("max_seconds"))]}
    return {"condition": UTTERANCES, "source": source}


def _run_file_near(checkpoint_uri: str) -> str | None:
    here = uris.absolute(checkpoint_uri).rstrip("/")
    for folder in (here, here.rsplit("/", 1)[0]):
        candidate = uris.join(folder, RUN_FILE)
        if uris.exists(candidate):
            return candidate
    return None


def _from_mlflow(model_uri: str) -> dict | None:
    try:
        run_id, params = tracking.logged_model_run(model_uri)
    except Exception:   # noqa: BLE001 - an unreadable run leaves the condition unknown
        return None
    source = f"MLflow run {run_id}"
    if "data.sessions.min_seconds" in params:
        return {"condition": SESSIONS, "source": source,
                "session_seconds": [float(params["data.sessions.min_seconds"]),
                                    float(params["data.sessions.max_seconds"])]}
    if "data.sessions" in params:
        return {"condition": UTTERANCES, "source": source}
    return None


def training_condition(model_uri: str) -> dict:
    """{condition: utterances | sessions | unknown, source, session_seconds (sessions only)}."""
    if model_uri.startswith(("models:/", "runs:/", "mlflow-artifacts:/")):
        found = _from_mlflow(model_uri)
        return found or {"condition": UNKNOWN, "source": None,
                         "reason": f"no data.sessions parameter in the MLflow run of {model_uri}"}
    run_file = _run_file_near(model_uri)
    if run_file is None:
        return {"condition": UNKNOWN, "source": None,
                "reason": f"no training run file beside the checkpoint {model_uri}"}
    fs, path = uris.filesystem(run_file)
    with fs.open(path) as f:
        return _from_config(json.load(f).get("config") or {}, run_file)


def carried_state_in_training(condition: dict) -> bool:
    """True when the model's fast weights carried state across utterances while it learnt."""
    return condition.get("condition") == SESSIONS
