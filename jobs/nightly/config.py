"""The config of `lact-audio nightly` (configs/nightly.yaml) and the training config it runs.

    name: nightly
    base_config: demo-asr.yaml          # a training config, relative to this file
    config: {train: {max_steps: 200}}   # changes to it (any training key); data.root is where
                                        # preprocessing writes, data.test the fixed test split
    corpus: {corpus: librispeech, input: ${work_dir:demo/raw}}
    init: champion                      # fine-tune the champion | scratch
    promotion: {alias: champion, margin: 0.005, confidence: 0.95}
    lock_hours: 13                      # a night's lock expires after this (longer than its deadline)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import MISSING, DictConfig, OmegaConf

from jobs.training.config import load_config, load_job_config, nested
from pipeline.errors import UserError
from pipeline.preprocessing.config import PreprocessConfig

INIT_CHOICES = ("champion", "scratch")


@dataclass
class CorpusSection:
    """The raw corpus new data arrives in; preprocessed into the training config's data.root."""

    corpus: str = "librispeech"           # librispeech | commonvoice
    input: str = MISSING                  # corpus root, local or s3://
    languages: Optional[list[str]] = None  # Common Voice
    audio_tokens: Optional[str] = None    # mulaw | kmeans (generation needs them)
    text_tokenizer: str = PreprocessConfig.text_tokenizer
    rows_per_shard: int = PreprocessConfig.rows_per_shard


@dataclass
class PromotionSection:
    registered_name: Optional[str] = None  # default lact-audio-<task>-<architecture>
    alias: str = "champion"               # the serving version; moved only on promotion
    previous_alias: str = "previous-champion"  # the champion before the last promotion (rollback)
    challenger_alias: str = "challenger"  # every nightly model gets it when registered
    # Promote when, on the frozen test split, champion score - challenger score >= margin AND the
    # paired bootstrap interval of that difference over utterances lies above 0 (scores are
    # lower-is-better: CER for ASR, bits/token for generation). A tie is never promoted.
    margin: float = 0.0
    confidence: float = 0.95              # of the paired bootstrap interval
    resamples: int = 10000
    seed: int = 0


@dataclass
class NightlyConfig:
    name: str = "nightly"                 # the challenger runs' name
    base_config: str = MISSING            # training config, relative to this file
    config: dict[str, Any] = field(default_factory=dict)
    corpus: CorpusSection = field(default_factory=CorpusSection)
    init: str = "champion"                # champion: fine-tune it (scratch when none) | scratch
    promotion: PromotionSection = field(default_factory=PromotionSection)
    experiment: str = "lact-audio-nightly"  # MLflow experiment of the decisions
    output: Optional[str] = None          # default <work dir>/nightly: decisions, state, the lock
    lock_hours: float = 13.0              # a held lock expires after this (a crashed night's lock)


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
    promotion = nightly.promotion
    aliases = (promotion.alias, promotion.challenger_alias, promotion.previous_alias)
    if not all(aliases) or len(set(aliases)) != 3:
        raise UserError("nightly config keys 'promotion.alias', 'promotion.challenger_alias' and "
                        f"'promotion.previous_alias': must be three different non-empty names, got {list(aliases)}")
    if not 0 < promotion.confidence < 1:
        raise UserError(f"nightly config key 'promotion.confidence': must be in (0, 1), got {promotion.confidence}")
    if promotion.resamples < 100:
        raise UserError(f"nightly config key 'promotion.resamples': must be >= 100, got {promotion.resamples}")
    if nightly.lock_hours <= 0:
        raise UserError(f"nightly config key 'lock_hours': must be > 0, got {nightly.lock_hours}")
    cfg = training_config(nightly)
    if cfg.data.test is None:
        raise UserError("nightly config key 'config.data.test': the champion and the challenger "
                        "are compared on a test split; name one")


def training_config(nightly: DictConfig, init_from: str | None = None) -> DictConfig:
    """The challenger's training config: base config <- `config:` <- what the nightly fixes
    (registration under the challenger alias, the start weights)."""
    promotion = nightly.promotion
    fixed = {"name": nightly.name, "tracking.register": True,
             "tracking.alias": promotion.challenger_alias}
    if promotion.registered_name:
        fixed["tracking.registered_name"] = promotion.registered_name
    changes = [OmegaConf.to_container(nightly.config, resolve=True), nested(fixed)]
    try:
        cfg = load_config(nightly.base_config, changes=changes)
    except UserError as exc:
        raise UserError(f"nightly config key 'config' (on {nightly.base_config}): {exc}") from exc
    cfg.train.init_from = init_from
    return cfg
