"""A trained model with the preprocessing it was trained on, ready for inference.

The model comes from jobs.runs.model_io (checkpoint URI, runs:/, models:/NAME@alias). Its
features, CMVN and tokenizers are read from the manifest of the split the run was evaluated on
(the checkpoint's `text_tokenizer_split`), or from `data_uri` when that split lives elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from jobs.runs import tracking
from jobs.runs.model_io import load_model
from pipeline.audio_tokenizer import load_audio_tokenizer
from pipeline.errors import UserError
from pipeline.features import AudioFeatureExtractor
from pipeline.normalizer import FeatureNormalizer
from pipeline.split_reader import open_split
from pipeline.text_tokenizer import load_text_tokenizer

SUBSAMPLING = 4   # the ASR front end (ConvSubsampling4x): one encoder frame per 4 feature frames


@dataclass
class InferenceModel:
    model: torch.nn.Module
    meta: dict
    manifest: dict
    split_uri: str
    uri: str
    version: str | None = None      # the registry version a models:/ alias resolved to

    @property
    def task(self) -> str:
        """The task's name, as the run saved it."""
        return self.meta["task"]

    @property
    def architecture(self) -> str:
        return str(self.meta.get("architecture"))

    @property
    def streams(self) -> bool:
        """Block-causal LaCT models run as one stream (exactly their offline output)."""
        return bool(getattr(self.model.config, "lact_causal", False)) and hasattr(self.model, "streaming_inference")

    # the preprocessing objects are built on first use, so that the object pickles small
    def feature_extractor(self):
        return AudioFeatureExtractor.from_config(self.manifest["feature"])

    def normalizer(self):
        return FeatureNormalizer.from_manifest(self.manifest)

    def text_tokenizer(self):
        return load_text_tokenizer(self.manifest, self.split_uri)

    def audio_tokenizer(self):
        tokenizer = load_audio_tokenizer(self.manifest, self.split_uri)
        if tokenizer is None:
            raise UserError(f"split {self.split_uri} has no audio tokenizer; the generator's run "
                            f"must be preprocessed with --audio-tokens (or pass --data)")
        return tokenizer

    @property
    def frame_seconds(self) -> float:
        """Seconds per encoder frame (CTC output step)."""
        feature = self.manifest["feature"]
        return SUBSAMPLING * float(feature["hop_length"]) / float(feature["sample_rate"])

    def require(self, task) -> "InferenceModel":
        """This model if it is for `task` (a task object, jobs/tasks), else a UserError."""
        if self.task != task.name:
            raise UserError(f"model {self.uri} is for the {self.task} task; this command needs {task.model_noun}")
        return self


def registry_version(model_uri: str) -> str | None:
    """The version number a models:/NAME@alias (or models:/NAME/N) points at now, else None."""
    if not model_uri.startswith("models:/"):
        return None
    name, _, alias = model_uri[len("models:/"):].partition("@")
    if not alias:
        return model_uri.rsplit("/", 1)[-1]
    tracking.use_store()
    version = tracking.version_with_alias(name, alias)
    if version is None:
        raise LookupError(f"no registered model {name!r} with alias {alias!r}")
    return version


def load(model_uri: str, data_uri: str | None = None) -> InferenceModel:
    """model_uri -> InferenceModel on the CPU in eval mode; UserError for anything unusable."""
    version = None
    if model_uri.startswith("models:/") and "@" in model_uri:
        # Pin the alias to the version it names now, so the weights and the reported version agree.
        try:
            version = registry_version(model_uri)
        except Exception as exc:
            raise UserError(f"cannot resolve {model_uri}: {str(exc).splitlines()[0]}") from exc
        name = model_uri[len("models:/"):].split("@")[0]
        model, meta = load_model(f"models:/{name}/{version}")
    else:
        model, meta = load_model(model_uri)
        version = registry_version(model_uri) if model_uri.startswith("models:/") else None
    split = data_uri or meta.get("text_tokenizer_split")
    if not split:
        raise UserError(f"model {model_uri} does not name the split it was trained on; pass --data SPLIT "
                        f"(a preprocessed split: its manifest gives the features and tokenizer)")
    info = open_split(split)
    return InferenceModel(model=model.eval(), meta=meta, manifest=info.manifest, split_uri=info.uri,
                          uri=model_uri, version=version)
