"""Speaker adaptation: what a model does with the rest of a speaker's session.

Three conditions, each only where it is the condition the model was trained for or can run:
- one-pass sessions (every model): the split cut into sessions the way training cuts its session
  rows (recordings.session_set, `session_seconds`), each session decoded in one forward, against
  the same session decoded utterance by utterance; the context gain with its paired interval
  over sessions (context_gain.py). A session-trained model saw exactly this input in training.
- streamed sessions (block-causal models): the same sessions fed chunk by chunk with the
  streaming state, the test-time form of the one pass (the same output, in bounded memory).
- chained carried state (models with test-time fast-weight updates, and by default only those
  whose training carried state across utterances, training_condition.py): each utterance
  decoded from the fast weights its earlier utterances left (LaCTASRModel.adapt_to_speaker),
  against every utterance from the learnt initial weights; also by position in the speaker's
  session (the last position pools the rest), and CER against the number of adaptation
  utterances k (default 0, 1, 2, 4, 8): per speaker the same held-out utterances (those after
  the first max k) decoded after adapting on the k utterances just before them.
"""

from __future__ import annotations

import torch

from jobs.evaluation.ablation import has_fast_weights
from jobs.evaluation.accuracy import GREEDY, scores, transcribe
from jobs.evaluation.data import EvalSplit
from jobs.evaluation.long_form import decode_recordings, length_summaries
from jobs.evaluation.recordings import RecordingSet
from jobs.evaluation.streaming import can_stream
from jobs.evaluation.training_condition import carried_state_in_training
from pipeline.errors import UserError

DEFAULT_COUNTS = (0, 1, 2, 4, 8)
DEFAULT_SESSION_SECONDS = (10.0, 40.0)   # pipeline.sessions' defaults: the session rows of training
MAX_POSITION = 9          # positions 1..8 one by one, 9 and later pooled
CHAINED_MODES = ("trained", "always", "never")


def can_adapt(model) -> bool:
    """Only a model that updates fast weights carries anything from one utterance to the next."""
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


def chained_state(model, split: EvalSplit, tokenizer, counts=DEFAULT_COUNTS) -> dict:
    """Fresh against carried state, by position and by adaptation count (module docstring)."""
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


def session_decoding(model, sessions: RecordingSet, tokenizer, chunk_frames: int, time_limit: float | None,
                     stream: bool, seed: int, resamples: int, batch_size: int) -> dict:
    """The sessions decoded in one pass (stream=False: one forward; True: streamed) and segmented."""
    rows = decode_recordings(model, [sessions], tokenizer, chunk_frames, time_limit, batch_size, stream=stream)
    summary = length_summaries([sessions], rows, seed, resamples)[0]
    for key in ("length", "target_seconds", "wanted_recordings", "wanted_speakers", "notes"):
        summary.pop(key, None)
    return {"status": "ok", "mode": "streamed" if stream else "one_forward", **summary, "sessions": rows}


def chained_decision(model, condition: dict | None, mode: str) -> str | None:
    """None when chained state is to be run, else why not."""
    if not can_adapt(model):
        return "no test-time fast-weight updates to carry (window, static_fast_weights or full_attention arm)"
    if mode == "never":
        return "chained state turned off (--chained-state never)"
    if mode == "trained" and not carried_state_in_training(condition or {}):
        trained = (condition or {}).get("condition", "unknown")
        why = ((condition or {}).get("reason") or "") if trained == "unknown" else "single utterances"
        return (f"not the condition it was trained for: trained on {trained}"
                + (f" ({why})" if why else "") + "; --chained-state always runs it anyway")
    return None


def evaluate_adaptation(model, split: EvalSplit, tokenizer, counts=DEFAULT_COUNTS,
                        sessions: RecordingSet | None = None, condition: dict | None = None,
                        chained: str = "trained", chunk_frames: int = 100, time_limit: float | None = None,
                        seed: int = 0, resamples: int = 10000, batch_size: int = 16) -> dict:
    """{training, one_pass_sessions, streamed_sessions, chained}; see the module docstring."""
    if chained not in CHAINED_MODES:
        raise UserError(f"--chained-state must be one of {', '.join(CHAINED_MODES)}, got {chained!r}")
    out = {"status": "ok", "training": condition or {"condition": "unknown"}}
    if sessions is not None:
        out["one_pass_sessions"] = session_decoding(model, sessions, tokenizer, chunk_frames, time_limit,
                                                    False, seed, resamples, batch_size)
        out["streamed_sessions"] = (
            session_decoding(model, sessions, tokenizer, chunk_frames, time_limit, True, seed, resamples,
                             batch_size) if can_stream(model) else
            {"status": "not_applicable", "reason": "bidirectional or full-attention encoder: it does not stream"})
    why_not = chained_decision(model, condition, chained)
    out["chained"] = (chained_state(model, split, tokenizer, counts) if why_not is None else
                      {"status": "not_applicable" if not can_adapt(model) else "not_run", "reason": why_not})
    return out
