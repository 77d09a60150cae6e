"""Fast-weight ablation: the split's CER with every test-time fast-weight update skipped (each
LaCT layer keeps its learnt initial weights), against the normal CER. The gap is what the
test-time training contributes; a gap near zero means the model does not use its fast weights."""

from __future__ import annotations

from jobs.evaluation.accuracy import GREEDY, scores, transcribe
from jobs.evaluation.data import EvalSplit


def has_fast_weights(model) -> bool:
    from models.lact_layer import LaCTLayer

    return any(isinstance(m, LaCTLayer) for m in model.modules())


def evaluate_ablation(model, split: EvalSplit, tokenizer, cer_with_updates: float) -> dict:
    from models.lact_layer import skip_fast_weight_updates

    if not has_fast_weights(model):
        return {"status": "not_applicable", "reason": "no fast weights (baseline transformer)"}
    refs = [u.text for u in split.utterances]
    with skip_fast_weight_updates(model):
        hyps = transcribe(model, [u.features for u in split.utterances], tokenizer, GREEDY)
    s = scores(refs, hyps)
    return {"status": "ok", "cer": s["cer"], "wer": s["wer"], "cer_with_updates": cer_with_updates,
            "cer_change": s["cer"] - cer_with_updates}
