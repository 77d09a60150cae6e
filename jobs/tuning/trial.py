"""One Tune trial: an ordinary training run (plan -> trainer -> finish, as `lact-audio train`)
whose Train reports reach Tune through TuneReportCallback (STACK_NOTES "Ray Tune with Train
V2"), logged as a child of the study's MLflow run.

A restored study restarts an unfinished trial under the same Train run name, so Ray Train
continues it from its latest checkpoint and MLflow logs into the same child run.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from jobs.training.config import load_config
from jobs.training.phases import Phases
from jobs.training.plan import make_plan
from jobs.training.run import train_planned
from jobs.tuning.dev_units import DEV_UNITS_FILE, score_dev_units
from pipeline import uri as uris
from pipeline.files import write_json


@dataclass
class StudyContext:
    """What every trial needs from the study's driver (trial processes do not share its env)."""

    name: str                    # the study's name
    configs: dict                # point key -> the trial's resolved training config (a dict)
    storage: str                 # <study dir>/train: the trials' Train runs
    parent_run_id: str           # the study's MLflow run
    env: dict                    # LACT_AUDIO_HOME / MLFLOW_TRACKING_URI of the driver


def point_key(point: dict) -> str:
    return json.dumps(point, sort_keys=True)


def train_run_name(trial_id: str) -> str:
    return f"train-trial_id={trial_id}"


def run_trial(tune_config: dict, context: StudyContext) -> None:
    """Tune's function trainable; `tune_config["params"]` is the trial's point."""
    import ray.tune
    from ray.tune.integration.ray_train import TuneReportCallback

    os.environ.update({k: v for k, v in context.env.items() if v})
    point = tune_config["params"]
    trial_id = ray.tune.get_context().get_trial_id()
    # resolved by the study's driver: a trial on another node needs no config files
    cfg = load_config(None, changes=[context.configs[point_key(point)]])
    cfg.output = context.storage
    phases = Phases()
    plan = make_plan(cfg, run_name=train_run_name(trial_id))
    phases.done("validate")
    _, result = train_planned(plan, phases, parent_run_id=context.parent_run_id,
                              tags={"tune_study": context.name, "tune_trial_id": trial_id},
                              params={f"tune.{k}": v for k, v in point.items()},
                              callbacks=[TuneReportCallback()],
                              register=False)   # the study registers only its best trial
    write_json(uris.join(plan.run_uri, DEV_UNITS_FILE), {"units": score_dev_units(plan, result)}, sort_keys=False)
