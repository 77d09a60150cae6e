"""The comparison arms (models/arms.py): each builds for both tasks, matches the LaCT model's
parameter count within 2 %, and removes exactly what its name says."""

from pathlib import Path

import pytest
import torch
import yaml

from models import LaCTAudioConfig, build_model
from models.factory import ASR_MODELS, GENERATION_MODELS
from models.arms import ARCHITECTURES, arm_config, parameter_ratio
from models.lact_layer import LaCTLayer, skip_fast_weight_updates

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def recipe(name: str, **changes) -> LaCTAudioConfig:
    """The model config of a shipped training config (the demo's recipes)."""
    model = yaml.safe_load((CONFIGS / name).read_text())["model"]["config"]
    return LaCTAudioConfig.from_dict({**model, **changes})


CASES = {
    "demo-asr": (ASR_MODELS, recipe("demo-asr.yaml")),
    "demo-asr-wide-momentum": (ASR_MODELS, recipe("demo-asr.yaml", inter_multi=2.0, use_momentum=True)),
    "demo-generation": (GENERATION_MODELS, recipe("demo-generation.yaml")),
    "streaming-asr": (ASR_MODELS, LaCTAudioConfig.from_yaml(CONFIGS / "models/asr_small_lact_streaming.yaml")),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("architecture", ARCHITECTURES[1:])
def test_every_arm_matches_lact_within_two_percent(case, architecture):
    family, config = CASES[case]
    with torch.device("meta"):
        lact = build_model(family, "lact", config)
        arm = build_model(family, architecture, config)
    assert abs(parameter_ratio(arm, lact) - 1) <= 0.02


def test_arms_remove_what_their_names_say():
    config = recipe("demo-asr.yaml", num_layers=1)
    names = {a: {n for n, _ in build_model(ASR_MODELS, a, config).named_parameters()} for a in ARCHITECTURES}
    fast = {"encoder.blocks.0.mixer.w0", "encoder.blocks.0.mixer.w1", "encoder.blocks.0.mixer.w2"}
    rates = "encoder.blocks.0.mixer.lr_proj.weight"
    assert fast <= names["lact"] and rates in names["lact"]
    assert not fast & names["window"] and rates not in names["window"]
    assert fast <= names["static_fast_weights"] and rates not in names["static_fast_weights"]
    assert not any(".mixer." in n for n in names["full_attention"])


def test_baseline_is_an_alias_of_full_attention():
    config = recipe("demo-asr.yaml", num_layers=1)
    torch.manual_seed(0)
    old = build_model(ASR_MODELS, "baseline", config)
    new = build_model(ASR_MODELS, "full_attention", config)
    assert type(old) is type(new)
    new.load_state_dict(old.state_dict())   # old checkpoints load into the new name
    with pytest.raises(ValueError, match="window, static_fast_weights"):
        build_model(ASR_MODELS, "windowed", config)


def test_static_fast_weights_are_read_but_never_updated():
    torch.manual_seed(0)
    config = recipe("demo-asr.yaml", num_layers=2, dropout=0.0, chunk_size=8)
    model = build_model(ASR_MODELS, "static_fast_weights", config).eval()
    feats = torch.randn(2, 120, 80)
    with torch.no_grad():
        out, _ = model(feats)
        with skip_fast_weight_updates(model):
            skipped, _ = model(feats)
        layer = next(m for m in model.modules() if isinstance(m, LaCTLayer))
        w0 = layer.w0.detach().clone()
        layer.w0.mul_(2.0)     # the learnt fast weights are what the output reads
        changed, _ = model(feats)
    torch.testing.assert_close(out, skipped)
    assert not torch.allclose(out, changed) and layer.fast_change == 0.0
    layer.w0.data.copy_(w0)
    # trained as ordinary parameters: the fast weights get gradients
    model.train()
    logits, _ = model(feats)
    logits.sum().backward()
    assert layer.w0.grad is not None and layer.w0.grad.abs().sum() > 0


def test_static_arm_streams_like_its_offline_forward():
    torch.manual_seed(0)
    cfg = LaCTAudioConfig(hidden_size=32, num_layers=2, num_attention_heads=4, num_lact_heads=2,
                          chunk_size=5, window_size=4, vocab_size=11, dropout=0.0, mel_bins=12,
                          lact_causal=True)
    model = build_model(ASR_MODELS, "static_fast_weights", cfg).eval().double()
    feats = torch.randn(2, 50, 12, dtype=torch.float64)
    with torch.no_grad():
        offline, _ = model(feats)
        first, state = model.streaming_inference(feats[:, :21], None)
        second, _ = model.streaming_inference(feats[:, 21:], state, final=True)
    torch.testing.assert_close(torch.cat([first, second], dim=1), offline, rtol=1e-9, atol=1e-9)


def test_window_arm_config_keeps_the_window_and_drops_the_fast_weights():
    config = recipe("demo-asr.yaml")
    window = arm_config("window", config)
    assert not window.use_fast_weights and window.window_size == config.window_size
    assert window.mlp_hidden_dim > config.mlp_hidden_dim
