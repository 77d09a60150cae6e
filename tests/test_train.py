"""Training pieces without Ray: config errors, lr schedule, SpecAugment, NaN-batch skipping,
checkpoint integrity, metric counts."""

from __future__ import annotations

import math
import os

import pytest
import torch
from omegaconf import OmegaConf

from jobs.training.config import as_plain, flatten, load_config, model_fields, nested
from jobs.training.schedule import lr_factor
from pipeline.errors import UserError

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "configs")
TINY = {"hidden_size": 32, "num_layers": 1, "num_attention_heads": 2, "num_lact_heads": 2,
        "chunk_size": 64, "window_size": 16, "dropout": 0.0, "mel_bins": 4, "vocab_size": 3,
        "audio_vocab_size": 256}


@pytest.mark.parametrize("overrides, key", [
    (["data.root=x", "train.bogus=1"], "train.bogus"),
    (["data.root=x", "train.max_steps=many"], "train.max_steps"),
    (["data.root=x", "train.strategy=horovod"], "train.strategy"),
    (["data.root=x", "train.zero_stage=4"], "train.zero_stage"),
    (["data.root=x", "optim.lr=0"], "optim.lr"),
    (["data.root=x", "model.architecture=rnn"], "model.architecture"),
    (["data.root=x", "nonsense=1"], "nonsense"),
    # model.config is LaCTAudioConfig's fields, typed: a misspelt field or a wrong type stops here
    (["data.root=x", "model.config.chunk_sise=16"], "model.config.chunk_sise"),
    (["data.root=x", "model.config.chunk_size=long"], "model.config.chunk_size"),
    (["data.root=x", "model.config.num_layers=2.5"], "model.config.num_layers"),
    (["data.root=x", "model.config.base_lr=fast"], "model.config.base_lr"),
    ([], "data.root"),
])
def test_bad_config_is_one_line_error_naming_the_key(overrides, key):
    with pytest.raises(UserError) as err:
        load_config(None, overrides)
    message = str(err.value)
    assert key in message and "\n" not in message


def test_shipped_configs_load_and_flatten():
    for name in ("demo-asr", "demo-generation", "librispeech-960h", "commonvoice"):
        cfg = load_config(os.path.join(CONFIGS, f"{name}.yaml"))
        flat = flatten(cfg)
        assert flat["train.max_steps"] == cfg.train.max_steps and "model.config.hidden_size" in flat


def test_model_config_from_yaml_is_checked_against_the_schema(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: {root: x}\nmodel:\n  config: {hidden_size: 64, windw_size: 8}\n")
    with pytest.raises(UserError, match="model.config.windw_size") as err:
        load_config(str(bad))
    assert "\n" not in str(err.value)


def test_model_config_keeps_only_the_keys_set_as_written():
    # the checkpoints, the run file and the MLflow params hold model.config as the config wrote it:
    # unset fields stay out (the model's defaults), an int stays an int
    cfg = load_config(None, ["data.root=x", "model.config.base_lr=100", "model.config.dropout=0.0"])
    assert model_fields(cfg) == {"base_lr": 100, "dropout": 0.0}
    assert isinstance(model_fields(cfg)["base_lr"], int)
    assert as_plain(cfg)["model"]["config"] == {"base_lr": 100, "dropout": 0.0}
    assert {k for k in flatten(cfg) if k.startswith("model.config.")} == {
        "model.config.base_lr", "model.config.dropout"}


def test_changes_merge_like_the_overrides_they_replace():
    # a study's `config:` and a trial's point are merged as nested layers, after the file
    a = load_config(os.path.join(CONFIGS, "demo-asr.yaml"),
                    ["train.max_steps=6", "model.config.chunk_size=16", "data.test=null", "name=x"])
    b = load_config(os.path.join(CONFIGS, "demo-asr.yaml"), changes=[
        {"train": {"max_steps": 6}, "data": {"test": None}},
        nested({"model.config.chunk_size": 16, "name": "x"})])
    assert as_plain(a) == as_plain(b)


def test_override_without_equals_and_missing_file_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="key=value"):
        load_config(None, ["data.root"])
    with pytest.raises(UserError, match="not found"):
        load_config(str(tmp_path / "nope.yaml"))


def test_warmup_then_cosine_to_the_floor():
    assert lr_factor(0, 10, 100, 0.1) == pytest.approx(0.1)
    assert lr_factor(9, 10, 100, 0.1) == pytest.approx(1.0)
    assert lr_factor(10, 10, 100, 0.1) == pytest.approx(1.0)
    assert lr_factor(55, 10, 100, 0.1) == pytest.approx(0.55)
    assert lr_factor(100, 10, 100, 0.1) == pytest.approx(0.1)
    values = [lr_factor(s, 10, 100, 0.1) for s in range(10, 101)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_spec_augment_masks_but_keeps_shape():
    from jobs.tasks.spec_augment import SpecAugment

    torch.manual_seed(0)
    x = torch.randn(4, 200, 80)
    y = SpecAugment(freq_width=10, time_width=20)(x)
    assert y.shape == x.shape and (y == 0).any() and not (x == 0).any()


def test_asr_counts_match_jiwer():
    from jobs.tasks.asr import asr_counts, asr_metrics

    m = asr_metrics(asr_counts(["a b c", "d e"], ["a x c", ""]))
    assert m["wer"] == pytest.approx(3 / 5) and m["cer"] == pytest.approx(4 / 8)


def worker_spec(task="asr", architecture="lact"):
    from jobs.training.loop import WorkerSpec

    cfg = load_config(None, ["data.root=x", "data.batch_size=4", "train.max_steps=10",
                             "optim.warmup_steps=0", "spec_augment.enabled=false",
                             f"task={task}", f"model.architecture={architecture}"])
    return WorkerSpec(config=OmegaConf.to_object(cfg), model_config=dict(TINY))


def batch(n=3, frames=40, nan=False):
    feats = torch.randn(n, frames, 4)
    if nan:
        feats[1, 5, 2] = float("nan")
    return {"features": feats, "feature_lengths": torch.full((n,), frames),
            "tokens": torch.tensor([[1, 2, 1]] * n), "token_lengths": torch.full((n,), 3),
            "durations": torch.full((n,), frames / 100.0), "texts": ["ab a"] * n,
            "utt_ids": [str(i) for i in range(n)]}


def test_nan_loss_batch_is_skipped_and_counted_weights_untouched():
    from jobs.training.loop import Trainer

    trainer = Trainer(worker_spec())
    before = {k: v.clone() for k, v in trainer.strategy.module.state_dict().items()}
    out = trainer.train_step(batch(nan=True))
    assert out["applied"] is False and math.isnan(out["loss"]) and trainer.skipped == 1
    for k, v in trainer.strategy.module.state_dict().items():
        assert torch.equal(v, before[k]), k  # poisoned batch changed nothing
    out = trainer.train_step(batch())
    assert out["applied"] and math.isfinite(out["loss"]) and trainer.skipped == 1
    assert trainer.step == 2
    changed = any(not torch.equal(v, before[k]) for k, v in trainer.strategy.module.state_dict().items())
    assert changed


def test_checkpoint_round_trip_and_corruption_detected(tmp_path):
    from jobs.runs.checkpoint import verify
    from jobs.training.loop import Trainer
    from jobs.runs.model_io import load_model

    trainer = Trainer(worker_spec())
    for _ in range(2):
        trainer.train_step(batch())
    trainer.best = 0.5
    trainer.write_checkpoint(str(tmp_path), {"dev_cer": 0.5})
    assert verify(str(tmp_path))["step"] == 2
    restored = Trainer(worker_spec())
    restored.restore(str(tmp_path))
    assert (restored.step, restored.best) == (2, 0.5)
    for k, v in restored.strategy.module.state_dict().items():
        assert torch.equal(v, trainer.strategy.module.state_dict()[k])
    model, meta = load_model(str(tmp_path))
    assert meta["task"] == "asr" and meta["step"] == 2
    for k, v in model.state_dict().items():  # the exported model is the trained one
        assert torch.equal(v, trainer.strategy.module.state_dict()[k]), k
    with open(tmp_path / "model.pt", "r+b") as f:  # flip a byte in the middle of the weights
        f.seek(os.path.getsize(tmp_path / "model.pt") // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(RuntimeError, match="corrupt"):
        verify(str(tmp_path))


def test_generation_steps_learn_a_repeating_token_pattern():
    """Ten steps on a periodic sequence: the next-token loss starts near log(256) (uniform) and
    falls well below it; an optimizer or loss that does nothing fails here."""
    from jobs.training.loop import Trainer

    spec = worker_spec("generation", "baseline")
    spec.config.optim.lr = 1e-2
    trainer = Trainer(spec)
    pattern = torch.tensor([3, 200, 57, 120] * 8)
    b = {"audio_tokens": torch.stack([pattern, pattern.roll(1)]),
         "audio_token_lengths": torch.tensor([32, 20]), "durations": torch.tensor([0.1, 0.1])}
    losses = [trainer.train_step(b)["loss"] for _ in range(10)]
    assert losses[0] == pytest.approx(math.log(256), rel=0.2)
    assert losses[-1] < 0.5 * losses[0], losses


def test_init_weights_start_training_from_another_model():
    """train.init_from (fine-tuning): the weights are the given model's, the step and optimizer fresh."""
    import dataclasses

    from jobs.training.loop import Trainer

    trained = Trainer(worker_spec())
    for _ in range(2):
        trained.train_step(batch())
    weights = {k: v.clone() for k, v in trained.strategy.module.state_dict().items()}
    tuned = Trainer(dataclasses.replace(worker_spec(), init_weights=weights))
    assert tuned.step == 0
    for k, v in tuned.strategy.module.state_dict().items():
        assert torch.equal(v, weights[k]), k
    fresh = Trainer(worker_spec()).strategy.module.state_dict()
    assert any(not torch.equal(v, weights[k]) for k, v in fresh.items())


def test_layer_options_are_reachable_from_overrides_and_validated():
    from jobs.training.plan import model_config

    manifest = {"feature": {"n_mels": 4}, "text_tokenizer": {"vocab_size": 3}}
    tiny = [f"model.config.{k}={v}" for k, v in TINY.items() if k not in ("mel_bins", "vocab_size")]
    cfg = load_config(None, ["data.root=x", *tiny, "model.config.fast_rotary=true",
                             "model.config.scale_leftover_step=true"])
    values = model_config(cfg, manifest)
    assert values["fast_rotary"] is True and values["scale_leftover_step"] is True
    for bad, key in ((["model.config.fast_rotary=maybe"], "fast_rotary"),
                     (["model.config.scale_leftover_step=often"], "scale_leftover_step"),
                     (["model.config.hidden_size=30", "model.config.num_attention_heads=3",
                       "model.config.fast_rotary=true"], "even LaCT head dim")):
        with pytest.raises(UserError, match=key) as err:
            model_config(load_config(None, ["data.root=x", *tiny, *bad]), manifest)
        assert "model.config" in str(err.value)
