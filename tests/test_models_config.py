"""LaCTAudioConfig: YAML loading and clear errors for invalid values."""

from pathlib import Path

import pytest

from models import LaCTAudioConfig, build_model, count_parameters
from models.factory import ASR_MODELS, GENERATION_MODELS

REPO = Path(__file__).resolve().parents[1]


def test_defaults_are_valid_and_round_trip():
    cfg = LaCTAudioConfig()
    assert LaCTAudioConfig.from_dict(cfg.to_dict()) == cfg
    assert not cfg.use_muon and cfg.use_momentum and cfg.lact_causal is False
    # options later than the shipped checkpoints default to the layer those were trained with
    assert cfg.fast_rotary is False and cfg.scale_leftover_step is False


def test_from_yaml_top_level_and_model_section(tmp_path):
    (tmp_path / "a.yaml").write_text("hidden_size: 64\nnum_attention_heads: 2\nnum_lact_heads: 2\nuse_muon: false\n")
    (tmp_path / "b.yaml").write_text("model:\n  hidden_size: 64\n  num_lact_heads: 4\ntrain:\n  lr: 0.1\n")
    a = LaCTAudioConfig.from_yaml(tmp_path / "a.yaml")
    b = LaCTAudioConfig.from_yaml(tmp_path / "b.yaml")
    assert (a.hidden_size, a.num_attention_heads, a.use_muon) == (64, 2, False)
    assert (b.hidden_size, b.num_lact_heads) == (64, 4)
    # the training config's shape (configs/models/*.yaml): the fields under model.config
    (tmp_path / "c.yaml").write_text("model:\n  architecture: lact\n  config:\n    hidden_size: 64\n"
                                     "    num_lact_heads: 4\n    mlp_multi: 3\n")
    c = LaCTAudioConfig.from_yaml(tmp_path / "c.yaml")
    assert (c.hidden_size, c.num_lact_heads, c.mlp_multi) == (64, 4, 3.0)
    assert c == LaCTAudioConfig(hidden_size=64, num_lact_heads=4, mlp_multi=3)


@pytest.mark.parametrize("bad, key", [
    (dict(hidden_size=100, num_attention_heads=3), "num_attention_heads"),
    (dict(hidden_size=96, num_lact_heads=5), "num_lact_heads"),
    (dict(hidden_size=36, num_attention_heads=4), "even"),
    (dict(chunk_size=0), "chunk_size"),
    (dict(window_size=-4), "window_size"),
    (dict(dropout=1.0), "dropout"),
    (dict(base_lr=0), "base_lr"),
    (dict(vocab_size=1), "vocab_size"),
    (dict(use_muon="yes"), "use_muon"),
    (dict(num_layers=2.5), "num_layers"),
    (dict(inter_multi=0.001), "inter_multi"),
    (dict(hiden_size=64), "hiden_size"),
    (dict(fast_rotary="yes"), "fast_rotary"),
    (dict(scale_leftover_step=1), "scale_leftover_step"),
    # LaCT head dim 15: rotary rotates pairs of channels
    (dict(hidden_size=30, num_attention_heads=3, num_lact_heads=2, fast_rotary=True), "fast_rotary"),
])
def test_invalid_values_raise_value_error_naming_the_key(bad, key):
    with pytest.raises(ValueError, match=key):
        LaCTAudioConfig.from_dict(bad)


def test_yaml_errors_name_the_file_and_key(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("model:\n  hidden_size: 100\n  num_attention_heads: 3\n")
    with pytest.raises(ValueError, match=r"bad\.yaml.*num_attention_heads"):
        LaCTAudioConfig.from_yaml(p)
    p.write_text("model:\n  config: {hidden_size: 64, windw_size: 8}\n")
    with pytest.raises(ValueError, match=r"bad\.yaml.*windw_size"):
        LaCTAudioConfig.from_yaml(p)
    p.write_text("model:\n  config: {num_layers: many}\n")
    with pytest.raises(ValueError, match=r"bad\.yaml.*num_layers"):
        LaCTAudioConfig.from_yaml(p)
    with pytest.raises(ValueError, match="not found"):
        LaCTAudioConfig.from_yaml(tmp_path / "missing.yaml")
    (tmp_path / "broken.yaml").write_text("model: [unclosed\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        LaCTAudioConfig.from_yaml(tmp_path / "broken.yaml")


@pytest.mark.parametrize("path", sorted((REPO / "configs" / "models").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_model_configs_load_and_build(path):
    cfg = LaCTAudioConfig.from_yaml(path)
    family = GENERATION_MODELS if path.name.startswith("gen") else ASR_MODELS
    lact, base = build_model(family, "lact", cfg), build_model(family, "baseline", cfg)
    assert abs(count_parameters(lact) - count_parameters(base)) / count_parameters(base) < 0.05


def test_build_model_rejects_unknown_names():
    with pytest.raises(ValueError, match="family"):
        build_model("tts", "lact", LaCTAudioConfig())
    with pytest.raises(ValueError, match="architecture"):
        build_model(ASR_MODELS, "mamba", LaCTAudioConfig())
    with pytest.raises(ValueError, match="num_attention_heads"):
        build_model(ASR_MODELS, "lact", {"hidden_size": 100, "num_attention_heads": 3})


def test_muon_needs_chunks_of_twice_the_head_dim():
    LaCTAudioConfig(hidden_size=64, num_lact_heads=2, chunk_size=64, use_muon=True)   # 64 >= 2 x 32
    with pytest.raises(ValueError, match=r"use_muon needs chunk_size >= 2 x the LaCT head dim.*= 32\), got chunk_size=63"):
        LaCTAudioConfig(hidden_size=64, num_lact_heads=2, chunk_size=63, use_muon=True)
    LaCTAudioConfig(hidden_size=64, num_lact_heads=2, chunk_size=63, use_muon=False)
