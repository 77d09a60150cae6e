"""Checkpoint folders written by the code of 456343f (before issue 30 moved jobs/ into layers,
typed the model config and gave LaCT a fast-weight object) load with today's code and give the
same outputs. The fixture holds three checkpoints as that training loop wrote them (model.pt,
meta.json, checkpoint.json) and each model's inputs and outputs at the time (made at 456343f: each model built under
torch.manual_seed(1) and written with jobs/training/checkpoint.py's write_model and write_index,
the meta fields its loop wrote)."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import pytest
import torch

from jobs.runs.model_io import load_checkpoint_dir

FIXTURE = Path(__file__).parent / "fixtures" / "checkpoints_at_456343f.tar.xz"


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("old-checkpoints")
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(root, filter="data")
    return root


@pytest.mark.parametrize("name", ["asr-lact", "asr-full_attention", "generation-lact"])
def test_an_old_checkpoint_loads_and_gives_its_outputs(unpacked, name):
    expected = torch.load(unpacked / "expected.pt")[name]
    model, meta = load_checkpoint_dir(str(unpacked / name))
    assert meta["step"] == 7 and meta["task"] in name
    with torch.no_grad():
        out = model(*expected["inputs"])
    if name.startswith("asr"):
        logits, out_lengths = out
        assert torch.equal(out_lengths, expected["out_lengths"])
    else:
        logits = out
    torch.testing.assert_close(logits, expected["logits"], rtol=0, atol=1e-6)


def test_a_tampered_old_checkpoint_is_refused(unpacked, tmp_path):
    copy = tmp_path / "asr-lact"
    shutil.copytree(unpacked / "asr-lact", copy)
    (copy / "model.pt").write_bytes((copy / "model.pt").read_bytes()[:-10])
    with pytest.raises(RuntimeError, match="corrupt"):
        load_checkpoint_dir(str(copy))
