"""Every file under configs/ loads through the one config system (OmegaConf structured configs),
each with its kind's schema: training, Tune study, nightly, demo arms, model."""

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from jobs.nightly.config import load_nightly
from jobs.training.config import load_config
from jobs.tuning.config import load_study, points
from models import LaCTAudioConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def kind(path: Path) -> str:
    if path.parent.name in ("tune", "models"):
        return path.parent.name
    if path.name.startswith("nightly"):
        return "nightly"
    return "demo-arms" if path.name == "demo-arms.yaml" else "training"


def load_demo_arms(path: Path) -> None:
    """{task: {arm: {training key: value}}}: each arm's recipe over its task's demo config."""
    families = {"asr": "demo-asr.yaml", "generation": "demo-generation.yaml"}
    for task, arms in OmegaConf.to_container(OmegaConf.load(path)).items():
        for arm, recipe in arms.items():
            recipe = [f"{k}={v}" for k, v in (recipe or {}).items()]
            cfg = load_config(str(CONFIGS / families[task]), [*recipe, f"model.architecture={arm}"])
            assert cfg.task == task


LOADERS = {
    "training": lambda p: load_config(str(p)),
    "tune": lambda p: points(load_study(str(p))),
    "nightly": lambda p: load_nightly(str(p)),
    "demo-arms": load_demo_arms,
    "models": LaCTAudioConfig.from_yaml,
}


@pytest.mark.parametrize("path", sorted(CONFIGS.rglob("*.yaml")), ids=lambda p: str(p.relative_to(CONFIGS)))
def test_every_config_file_loads_with_its_schema(path):
    LOADERS[kind(path)](path)
