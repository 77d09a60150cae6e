"""Long-form recognition: recordings of about N seconds built by joining consecutive utterances
of one speaker (features concatenated in recording order, transcripts joined with a space),
each decoded in one forward pass.

Every model is scored on the same recordings. A recording a model cannot decode (out of memory,
past the time limit) is a result with that status, not an error. A target longer than any
speaker's audio uses the speaker with the most audio; `seconds` is always the real length.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from jobs.evaluation.accuracy import decode_logits, scores
from jobs.evaluation.data import EvalSplit
from jobs.evaluation.limits import run_limited

DEFAULT_SECONDS = (60.0, 300.0, 600.0, 1800.0)


@dataclass
class LongRecording:
    speaker: str
    target_seconds: float
    utt_ids: list[str]
    text: str                       # the joined reference
    features: torch.Tensor          # [T, mel]
    seconds: float
    starts: list[float] = field(default_factory=list)   # where each utterance begins (s)


def join_utterances(utterances, target_seconds: float, frame_rate: float, speaker: str) -> LongRecording:
    """Consecutive utterances from the first on, until the target duration is reached."""
    taken, total = [], 0.0
    for utt in utterances:
        if total >= target_seconds:
            break
        taken.append(utt)
        total += utt.features.shape[0] / frame_rate
    starts, position = [], 0.0
    for utt in taken:
        starts.append(position)
        position += utt.features.shape[0] / frame_rate
    return LongRecording(
        speaker=speaker, target_seconds=target_seconds, utt_ids=[u.utt_id for u in taken],
        text=" ".join(u.text.strip() for u in taken if u.text.strip()),
        features=torch.cat([u.features for u in taken], dim=0), seconds=position, starts=starts)


def build_recordings(split: EvalSplit, targets: list[float]) -> list[LongRecording]:
    """One recording per target: from the first speaker (in id order) with enough audio, else
    from the speaker with the most audio."""
    speakers = split.by_speaker()
    audio = {s: sum(u.features.shape[0] for u in utts) / split.frame_rate for s, utts in speakers.items()}
    recordings = []
    for target in targets:
        enough = [s for s in sorted(speakers) if audio[s] >= target]
        speaker = enough[0] if enough else max(sorted(speakers), key=lambda s: audio[s])
        recordings.append(join_utterances(speakers[speaker], target, split.frame_rate, speaker))
    return recordings


@torch.no_grad()
def decode_recording(model, recording: LongRecording, tokenizer) -> str:
    logits, lengths = model(recording.features[None], torch.tensor([recording.features.shape[0]]))
    return decode_logits(logits, lengths, tokenizer)[0]


def evaluate_long_form(model, recordings: list[LongRecording], tokenizer,
                       time_limit: float | None) -> list[dict]:
    """[{seconds, target_seconds, speaker, utterances, cer, wer, status, decode_seconds, rtf}]."""
    rows, failed = [], None
    for rec in recordings:
        row = {"seconds": round(rec.seconds, 2), "target_seconds": rec.target_seconds,
               "speaker": rec.speaker, "utterances": len(rec.utt_ids), "cer": None, "wer": None}
        if failed is not None and rec.seconds >= failed["seconds"]:
            # A longer recording costs more: do not spend the time limit again to fail again.
            row.update(status=failed["status"], decode_seconds=0.0,
                       detail=f"not run: the {failed['seconds']:.0f} s recording already ended "
                              f"with {failed['status']}")
            rows.append(row)
            continue
        outcome = run_limited(lambda rec=rec: decode_recording(model, rec, tokenizer), time_limit)
        row.update(status=outcome.status, decode_seconds=round(outcome.seconds, 3))
        if outcome.ok:
            s = scores([rec.text], [outcome.value])
            row.update(cer=s["cer"], wer=s["wer"], rtf=outcome.seconds / max(rec.seconds, 1e-9),
                       **{k: s[k] for k in ("char_errors", "char_total", "word_errors", "word_total")})
        else:
            row["detail"] = outcome.detail
            failed = row
        rows.append(row)
    return rows
