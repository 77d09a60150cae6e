"""The config of `lact-audio nightly` (configs/nightly.yaml) and the training config it runs.

    name: nightly
    base_config: demo-asr.yaml          # a training config, relative to this file
    config: {train: {max_steps: 200}}   # changes to it (any training key); data.root is where
                                        # preprocessing writes, data.test the fixed test split
    corpus: {corpus: librispeech, input: ${work_dir:demo/raw}}
    init: champion                      # fine-tune the champion | scratch
    promotion: {alias: champion, margin: 0.005}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import MISSING, DictConfig, OmegaConf

from jobs.training.config import as_overrides, flatten, load_config, load_job_config
from pipeline.errors import UserError

INIT_CHOICES = ("champion", "scratch")


@dataclass
class CorpusSection:
    """The raw corpus new data arrives in; preprocessed into the training config's data.root."""

    corpus: str = "librispeech"           # librispeech | commonvoice
    input: str = MISSING                  # corpus root, local or s3://
    languages: Optional[list[str]] = None  # Common Voice
    audio_tokens: Optional[str] = None    # mulaw | kmeans (generation needs them)
    text_tokenizer: str = "char"
    rows_per_shard: int = 64


@dataclass
class PromotionSection:
    registered_name: Optional[str] = None  # default lact-audio-<task>-<architecture>
    alias: str = "champion"               # the serving version; moved only on promotion
    challenger_alias: str = "challenger"  # every nightly model gets it when registered
    # Promote when champion score - challenger score >= margin on the test split (scores are
    # lower-is-better: CER for ASR, bits/token for generation). 0: any improvement or a tie.
    margin: float = 0.0


@dataclass
class NightlyConfig:
    name: str = "nightly"                 # the challenger runs' name
    base_config: str = MISSING            # training config, relative to this file
    config: dict[str, Any] = field(default_factory=dict)
    corpus: CorpusSection = field(default_factory=CorpusSection)
    init: str = "champion"                # champion: fine-tune it (scratch when none) | scratch
    promotion: PromotionSection = field(default_factory=PromotionSection)
    experiment: str = "lact-audio-nightly"  # MLflow experiment of the decisions
    output: Optional[str] = None          # default <work dir>/nightly: decisions and state


def load_nightly(path: str, overrides: list[str] | None = None) -> DictConfig:
    """Schema <- YAML <- key=value overrides; checked down to the training config."""
    nightly = load_job_config(NightlyConfig, path, overrides, "nightly config")
    validate(nightly)
    return nightly


def validate(nightly: DictConfig) -> None:
    if nightly.init not in INIT_CHOICES:
        raise UserError(f"nightly config key 'init': {nightly.init!r} is not one of {list(INIT_CHOICES)}")
    if nightly.corpus.rows_per_shard < 1:
        raise UserError("nightly config key 'corpus.rows_per_shard': must be >= 1")
    aliases = (nightly.promotion.alias, nightly.promotion.challenger_alias)
    if not all(aliases) or aliases[0] == aliases[1]:
        raise UserError("nightly config keys 'promotion.alias' and 'promotion.challenger_alias': "
                        f"must be two different non-empty names, got {list(aliases)}")
    cfg = training_config(nightly)
    if cfg.data.test is None:
        raise UserError("nightly config key 'config.data.test': the champion and the challenger "
                        "are compared on a test split; name one")


def training_config(nightly: DictConfig, init_from: str | None = None) -> DictConfig:
    """The challenger's training config: base config <- `config:` <- what the nightly fixes
    (registration under the challenger alias, the start weights)."""
    changes = flatten(OmegaConf.create(OmegaConf.to_container(nightly.config, resolve=True)))
    promotion = nightly.promotion
    changes.update({"name": nightly.name, "tracking.register": True,
                    "tracking.alias": promotion.challenger_alias})
    if promotion.registered_name:
        changes["tracking.registered_name"] = promotion.registered_name
    try:
        cfg = load_config(nightly.base_config, as_overrides(changes))
    except UserError as exc:
        raise UserError(f"nightly config key 'config' (on {nightly.base_config}): {exc}") from exc
    cfg.train.init_from = init_from
    return cfg
