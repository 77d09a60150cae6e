"""LaCTAudioConfig: one dataclass describing every LaCT / baseline speech model.

Units: `chunk_size` and `window_size` count encoder tokens (after the 4x conv subsampling for
ASR, audio tokens for generation). Invalid values raise ValueError naming the key at
construction, so a bad YAML file fails before any model is built.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException


FAST_WEIGHTS = ("swiglu", "linear")


@dataclass
class LaCTAudioConfig:
    # architecture
    hidden_size: int = 256
    num_layers: int = 4
    num_attention_heads: int = 4
    num_lact_heads: int = 2
    mlp_multi: float = 2.0           # SwiGLU MLP hidden = mlp_multi * hidden_size
    # LaCT
    chunk_size: int = 2048           # fast-weight update chunk (encoder tokens)
    window_size: int = 64            # sliding-window attention span (encoder tokens)
    inter_multi: float = 2.0         # fast-weight SwiGLU hidden = inter_multi * lact head dim
    # Muon (Newton-Schulz on the update) needs chunk_size >= 2 * lact head dim, see validate().
    use_muon: bool = False
    use_momentum: bool = True
    # Fast-weight step at zero lr-projection output: the update is base_lr times the chunk's
    # mean token gradient, so the same base_lr moves the weights alike on short and long chunks.
    base_lr: float = 10.0
    muon_steps: int = 5
    # Ablation switches (LaCT architecture only): drop the window attention or the fast weights
    # from every LaCT layer, or use one linear fast weight per head instead of SwiGLU.
    use_window_attention: bool = True
    use_fast_weights: bool = True
    # False: the fast weights are ordinary trained parameters, read but never updated (the
    # `static_fast_weights` arm, models/arms.py); no learning-rate or momentum projections.
    update_fast_weights: bool = True
    fast_weight: str = "swiglu"      # swiglu | linear
    # Rotary positions (rope_theta) on the fast branch's q/k, as the reference LM layer has;
    # without them its memory is a bag of chunks. Off: the layer of earlier checkpoints.
    fast_rotary: bool = False
    # True: a chunk of n < chunk_size tokens (an input's leftover last chunk, or a whole input
    # shorter than a chunk) steps n / chunk_size as far as a full chunk; false: every chunk
    # takes a full-size step (its mean token gradient), the rule earlier checkpoints learnt.
    scale_leftover_step: bool = False
    # False: bidirectional encoder, the paper's offline setting: the fast weights are updated
    # chunk by chunk over the WHOLE input first, then every token reads those final weights (the
    # state after the last chunk), so an input longer than chunk_size still gives each token a
    # memory of all of it, later chunks included (with chunk_size >= length: one update over the
    # whole utterance); models/lact_layer.py's docstring says what each token reads.
    # True: block-causal (apply-then-update), causal attention and causal conv subsampling;
    # needed for streaming_inference. Generators are always block-causal.
    lact_causal: bool = False
    rope_theta: float = 10000.0
    # audio
    mel_bins: int = 80
    sample_rate: int = 16000
    hop_length: int = 160
    win_length: int = 400
    # heads
    vocab_size: int = 32             # text vocabulary incl. CTC blank 0
    audio_vocab_size: int = 256      # audio-token vocabulary of the generator
    # training
    dropout: float = 0.1
    gradient_checkpointing: bool = False

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type in ("int", int):
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ValueError(f"{f.name} must be an integer, got {value!r}")
            elif f.type in ("float", float):
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ValueError(f"{f.name} must be a number, got {value!r}")
                setattr(self, f.name, float(value))
            elif f.type in ("bool", bool):
                if not isinstance(value, bool):
                    raise ValueError(f"{f.name} must be true or false, got {value!r}")
            elif f.type in ("str", str):
                if not isinstance(value, str):
                    raise ValueError(f"{f.name} must be a string, got {value!r}")
        for name in ("hidden_size", "num_layers", "num_attention_heads", "num_lact_heads",
                     "chunk_size", "window_size", "mel_bins", "sample_rate", "hop_length",
                     "win_length", "audio_vocab_size", "muon_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.vocab_size < 2:
            raise ValueError(f"vocab_size must be >= 2 (blank 0 plus at least one token), got {self.vocab_size!r}")
        for name in ("inter_multi", "mlp_multi", "base_lr", "rope_theta"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"num_attention_heads={self.num_attention_heads} does not divide "
                             f"hidden_size={self.hidden_size}")
        if self.hidden_size % self.num_lact_heads:
            raise ValueError(f"num_lact_heads={self.num_lact_heads} does not divide "
                             f"hidden_size={self.hidden_size}")
        if self.attention_head_dim % 2:
            raise ValueError(f"hidden_size / num_attention_heads = {self.attention_head_dim} must be "
                             "even (rotary positions rotate pairs of channels)")
        if self.fast_rotary and self.lact_head_dim % 2:
            raise ValueError(f"fast_rotary needs an even LaCT head dim (hidden_size / num_lact_heads "
                             f"= {self.lact_head_dim}): rotary positions rotate pairs of channels")
        if self.fast_hidden_dim < 1:
            raise ValueError(f"inter_multi={self.inter_multi} gives an empty fast-weight hidden layer")
        if self.fast_weight not in FAST_WEIGHTS:
            raise ValueError(f"fast_weight must be one of {', '.join(FAST_WEIGHTS)}, got {self.fast_weight!r}")
        if not (self.use_window_attention or self.use_fast_weights):
            raise ValueError("use_window_attention and use_fast_weights are both false: "
                             "a LaCT layer needs at least one of them")
        if self.use_muon and self.chunk_size < 2 * self.lact_head_dim:
            # A chunk of n tokens gives an update of rank <= n; Newton-Schulz sets every singular
            # value to ~1, so a short chunk's few directions would get full-size steps.
            raise ValueError(f"use_muon needs chunk_size >= 2 x the LaCT head dim (hidden_size / "
                             f"num_lact_heads = {self.lact_head_dim}), got chunk_size={self.chunk_size}: "
                             "use a longer chunk, more LaCT heads, or use_muon: false")
        if self.win_length < self.hop_length:
            raise ValueError(f"win_length={self.win_length} must be >= hop_length={self.hop_length}")

    # ------------------------------------------------------------------ derived sizes
    @property
    def attention_head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def lact_head_dim(self) -> int:
        return self.hidden_size // self.num_lact_heads

    @property
    def fast_hidden_dim(self) -> int:
        return int(round(self.lact_head_dim * self.inter_multi))

    @property
    def mlp_hidden_dim(self) -> int:
        return max(1, int(round(self.hidden_size * self.mlp_multi)))

    # ------------------------------------------------------------------ (de)serialisation
    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "LaCTAudioConfig":
        if not isinstance(d, Mapping):
            raise ValueError(f"model config must be a mapping of field: value, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown model config key(s): {', '.join(map(str, unknown))} "
                             f"(known: {', '.join(sorted(known))})")
        return cls(**dict(d))

    @classmethod
    def from_yaml(cls, path: str | Path) -> "LaCTAudioConfig":
        """Read a YAML file through OmegaConf with this class as the schema: the fields under
        `model.config:` (the training config's shape, configs/models/*.yaml), or, as older
        files have them, under `model:` or at top level."""
        p = Path(path)
        if not p.is_file():
            raise ValueError(f"model config file not found: {p}")
        try:
            data = OmegaConf.load(p)
        except Exception as e:
            raise ValueError(f"model config {p} is not valid YAML: {str(e).splitlines()[0]}") from None
        try:
            return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls), _fields_of(data)))
        except OmegaConfBaseException as e:
            raise ValueError(f"{p}: model config key '{e.full_key}': {str(e).splitlines()[0]}") from None
        except ValueError as e:
            raise ValueError(f"{p}: {e}") from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "LaCTAudioConfig":
        return dataclasses.replace(self, **changes)


def _fields_of(data) -> DictConfig:
    """The mapping of LaCTAudioConfig fields in a loaded YAML file (see from_yaml)."""
    if not isinstance(data, DictConfig):
        raise ValueError(f"model config must be a mapping of field: value, got {type(data).__name__}")
    model = data.get("model")
    if not isinstance(model, DictConfig):
        return data
    return model.config if isinstance(model.get("config"), DictConfig) else model
