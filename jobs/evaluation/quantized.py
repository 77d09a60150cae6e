"""Quantised inference: CER change and speed change of reduced-precision copies of a model.

- INT8: torch.ao dynamic quantisation of every nn.Linear (weights int8, activations quantised
  on the fly), on the CPU. The fast weights of LaCT layers are tensors used in batched matmuls,
  not nn.Linear, so they stay float32 (and so does the conv front end).
- FP16: the whole model in half precision, measured only on CUDA (CPU half matmuls are slow
  emulation, their speed says nothing).
"""

from __future__ import annotations

import copy
import time
import warnings

import torch

from jobs.evaluation.accuracy import GREEDY, scores, transcribe
from jobs.evaluation.data import EvalSplit


def int8_dynamic(model: torch.nn.Module) -> torch.nn.Module:
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():   # torch.ao.quantization is deprecated in favour of torchao
        warnings.simplefilter("ignore")
        return quantize_dynamic(copy.deepcopy(model).cpu().eval(), {torch.nn.Linear}, dtype=torch.qint8)


def _timed_cer(model, split: EvalSplit, tokenizer, device: str = "cpu",
               dtype: torch.dtype = torch.float32) -> tuple[float, float]:
    refs = [u.text for u in split.utterances]
    started = time.perf_counter()
    hyps = transcribe(model, [u.features for u in split.utterances], tokenizer, GREEDY,
                      device=device, dtype=dtype)
    return scores(refs, hyps)["cer"], time.perf_counter() - started


def evaluate_quantized(model, split: EvalSplit, tokenizer) -> dict:
    audio = sum(u.duration for u in split.utterances)
    cer32, sec32 = _timed_cer(model, split, tokenizer)
    out = {"float32": {"cer": cer32, "seconds": sec32, "rtf": sec32 / max(audio, 1e-9), "device": "cpu"}}
    cer8, sec8 = _timed_cer(int8_dynamic(model), split, tokenizer)
    out["int8_dynamic"] = {"cer": cer8, "seconds": sec8, "rtf": sec8 / max(audio, 1e-9), "device": "cpu",
                           "cer_change": cer8 - cer32, "speedup": sec32 / max(sec8, 1e-9),
                           "scope": "nn.Linear weights int8; fast weights and convolutions float32"}
    if torch.cuda.is_available():
        gpu32 = copy.deepcopy(model).cuda().eval()
        c32, s32 = _timed_cer(gpu32, split, tokenizer, "cuda")
        half = gpu32.half()
        c16, s16 = _timed_cer(half, split, tokenizer, "cuda", torch.float16)
        out["float16"] = {"cer": c16, "seconds": s16, "device": "cuda", "cer_change": c16 - c32,
                          "speedup": s32 / max(s16, 1e-9), "float32_cuda_cer": c32}
    else:
        out["float16"] = {"status": "not_measured", "reason": "no CUDA device"}
    return out
