"""Speaker adaptation through the fast weights (LaCTASRModel.adapt_to_speaker).

Two figures on the split's voices:
- carried against fresh: each utterance of a speaker decoded from the fast weights its earlier
  utterances left (state carried in recording order), against every utterance from the learnt
  initial weights; also by position: a speaker's utterances in recording order are one session,
  and the CER of the utterances at position 1, 2, ... (the last position pools the rest) is given
  with and without the carried state (position 1 has nothing carried: the two agree there);
- CER against the number of adaptation utterances k (default 0, 1, 2, 4, 8): per speaker the
  same held-out utterances (those after the first max k) are decoded after adapting on the k
  utterances just before them. k = 0 is the unadapted model.
Models without fast weights (baselines) are recorded as not applicable.
"""

from __future__ import annotations

import torch

from jobs.evaluation.accuracy import GREEDY, scores, transcribe
from jobs.evaluation.data import EvalSplit

DEFAULT_COUNTS = (0, 1, 2, 4, 8)
MAX_POSITION = 9          # positions 1..8 one by one, 9 and later pooled


def can_adapt(model) -> bool:
    """Only a model that updates fast weights carries anything from one utterance to the next."""
    from jobs.evaluation.ablation import has_fast_weights

    return hasattr(model, "adapt_to_speaker") and hasattr(model, "reset_speaker") and has_fast_weights(model)


@torch.no_grad()
def carried_hypotheses(model, utterances, tokenizer) -> list[str]:
    """One speaker's utterances in order, each decoded after adapting on all earlier ones."""
    model.reset_speaker()
    hyps = []
    try:
        for utt in utterances:
            hyps += transcribe(model, [utt.features], tokenizer, GREEDY)
            model.adapt_to_speaker([utt.features])   # calls accumulate
    finally:
        model.reset_speaker()
    return hyps


@torch.no_grad()
def cer_after_adapting(model, speakers: dict, k: int, held_from: int, tokenizer) -> tuple[dict, int]:
    refs, hyps = [], []
    try:
        for utts in speakers.values():
            model.reset_speaker()
            if k:
                model.adapt_to_speaker([u.features for u in utts[held_from - k: held_from]])
            held = utts[held_from:]
            refs += [u.text for u in held]
            hyps += transcribe(model, [u.features for u in held], tokenizer, GREEDY)
    finally:
        model.reset_speaker()
    return scores(refs, hyps), len(refs)


def by_position(positions: list[int], refs: list[str], fresh: list[str], carried: list[str]) -> list[dict]:
    """CER of the utterances at each position of their session, fresh and carried."""
    rows = []
    for p in sorted(set(positions)):
        at = [i for i, q in enumerate(positions) if q == p]
        pick = lambda hyps: [hyps[i] for i in at]   # noqa: E731
        rows.append({"position": p if p < MAX_POSITION else f"{p}+", "utterances": len(at),
                     "fresh_cer": scores(pick(refs), pick(fresh))["cer"],
                     "carried_cer": scores(pick(refs), pick(carried))["cer"]})
    return rows


def evaluate_adaptation(model, split: EvalSplit, tokenizer, counts=DEFAULT_COUNTS) -> dict:
    if not can_adapt(model):
        return {"status": "not_applicable", "reason": "no test-time fast-weight updates to carry (window, static_fast_weights or full_attention arm)"}
    speakers = split.by_speaker()
    fresh_refs, fresh_hyps, carried_hyps, positions = [], [], [], []
    for utts in speakers.values():
        fresh_refs += [u.text for u in utts]
        fresh_hyps += transcribe(model, [u.features for u in utts], tokenizer, GREEDY)
        carried_hyps += carried_hypotheses(model, utts, tokenizer)
        positions += [min(i + 1, MAX_POSITION) for i in range(len(utts))]
    out = {"status": "ok", "speakers": len(speakers),
           "fresh_cer": scores(fresh_refs, fresh_hyps)["cer"],
           "carried_cer": scores(fresh_refs, carried_hyps)["cer"],
           "by_position": by_position(positions, fresh_refs, fresh_hyps, carried_hyps),
           "by_count": []}
    # The largest k that leaves at least one held-out utterance for some speakers.
    most = max(len(u) for u in speakers.values())
    usable = sorted(k for k in counts if k < most)
    if not usable:
        return out
    held_from = usable[-1]
    eligible = {s: u for s, u in speakers.items() if len(u) > held_from}
    for k in usable:
        s, n = cer_after_adapting(model, eligible, k, held_from, tokenizer)
        out["by_count"].append({"utterances": k, "cer": s["cer"], "wer": s["wer"],
                                "held_out_utterances": n, "speakers": len(eligible)})
    skipped = sorted(set(counts) - set(usable))
    if skipped:
        out["not_measured_counts"] = {"counts": skipped,
                                      "reason": f"no speaker has more than {most} utterances"}
    return out
