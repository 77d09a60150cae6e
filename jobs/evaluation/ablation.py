"""Fast-weight ablation: the split's CER with every test-time fast-weight update skipped (each
LaCT layer keeps its learnt initial weights), against the normal CER. The gap is what the
test-time training contributes; a gap near zero means the model does not use its fast weights.
Beside it, how far the normal pass moved the fast weights (||W_end - W_start|| / ||W_start||,
mean over layers and batches)."""

from __future__ import annotations

import torch

from jobs.evaluation.accuracy import GREEDY, scores, transcribe
from jobs.evaluation.data import EvalSplit
from models.lact_layer import LaCTLayer, skip_fast_weight_updates


def has_fast_weights(model) -> bool:
    """Whether any layer updates fast weights at test time (not window, static or full attention)."""
    return any(isinstance(m, LaCTLayer) and m.update_fast_weights for m in model.modules())


@torch.no_grad()
def mean_fast_weight_change(model, split: EvalSplit, tokenizer) -> float:
    """The fast-weight change of a normal pass over the split, averaged over batches and layers."""
    seen: list[float] = []
    hooks = [m.register_forward_hook(lambda layer, args, out: seen.append(layer.fast_change))
             for m in model.modules() if isinstance(m, LaCTLayer) and m.update_fast_weights]
    try:
        transcribe(model, [u.features for u in split.utterances], tokenizer, GREEDY)
    finally:
        for h in hooks:
            h.remove()
    return sum(seen) / len(seen) if seen else 0.0


def evaluate_ablation(model, split: EvalSplit, tokenizer, cer_with_updates: float) -> dict:
    if not has_fast_weights(model):
        return {"status": "not_applicable", "reason": "no test-time fast-weight updates (window, static_fast_weights or full_attention arm)"}
    refs = [u.text for u in split.utterances]
    with skip_fast_weight_updates(model):
        hyps = transcribe(model, [u.features for u in split.utterances], tokenizer, GREEDY)
    s = scores(refs, hyps)
    return {"status": "ok", "cer": s["cer"], "wer": s["wer"], "cer_with_updates": cer_with_updates,
            "cer_change": s["cer"] - cer_with_updates,
            "relative_cer_change": (s["cer"] - cer_with_updates) / max(cer_with_updates, 1e-12),
            "fast_weight_change": mean_fast_weight_change(model, split, tokenizer)}
