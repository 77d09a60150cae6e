"""One recording (URI or bytes) -> Transcript: audio stream -> log-probs -> timed segments."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from jobs.inference.alignment import CTCSegmenter, Segment
from jobs.inference.audio_stream import FeatureStream
from jobs.inference.model import InferenceModel
from jobs.inference.recognizer import WindowConfig, log_probs
from jobs.inference.recognizer import log_probs as windowed
from pipeline.audio import AudioError

PROGRESS_MIN_SECONDS = 5.0


@dataclass
class DecodeOptions:
    beam_size: int | None = None                 # None or 1: greedy
    windows: WindowConfig = field(default_factory=WindowConfig)
    progress: bool = False                       # a tqdm bar on stderr for longer recordings


@dataclass
class Transcript:
    source: str
    text: str
    duration: float
    segments: list[Segment]
    repairs: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"source": self.source, "text": self.text, "duration": round(self.duration, 3),
                "segments": [s.to_dict() for s in self.segments], "repairs": list(self.repairs)}


def _progress_bar(stream: FeatureStream):
    from tqdm import tqdm

    return tqdm(total=round(stream.duration), unit="s", desc=str(stream.name).rsplit("/", 1)[-1],
                file=sys.stderr, leave=False)


def transcribe(model: InferenceModel, source: str | bytes, options: DecodeOptions | None = None,
               name: str = "", tokenizer=None) -> Transcript:
    """Raises pipeline.audio.AudioError when the audio cannot be used."""
    options = options or DecodeOptions()
    stream = FeatureStream(source, model, name)
    feature = model.manifest["feature"]
    frame_rate = float(feature["sample_rate"]) / float(feature["hop_length"])
    segmenter = CTCSegmenter(tokenizer or model.text_tokenizer(), model.frame_seconds, options.beam_size)
    segments: list[Segment] = []
    bar = None
    try:
        for logp in log_probs(model.model, stream, options.windows, frame_rate, model.streams):
            if bar is None and options.progress and (stream.duration or 0) > PROGRESS_MIN_SECONDS:
                bar = _progress_bar(stream)
            if bar is not None:
                bar.update(max(0, min(round(stream.seconds_read), bar.total) - bar.n))
            segments += segmenter.push(logp)
        segments += segmenter.finish()
    finally:
        if bar is not None:
            bar.close()
    return _finished(stream, segments)


def transcribe_many(model: InferenceModel, sources: list[bytes | str], options: DecodeOptions | None = None,
                    tokenizer=None) -> list[Transcript | Exception]:
    """Several recordings at once (what Serve's request batching hands over): those that fit in
    one window go through the model as one padded batch, longer ones one by one as above.
    An unusable recording gives its AudioError in its place; the others are unaffected."""
    import torch


    options = options or DecodeOptions()
    tokenizer = tokenizer or model.text_tokenizer()
    feature = model.manifest["feature"]
    frame_rate = float(feature["sample_rate"]) / float(feature["hop_length"])
    window, _ = options.windows.frames(frame_rate)
    results: list[Transcript | Exception | None] = [None] * len(sources)
    batch: list[tuple[int, torch.Tensor, FeatureStream]] = []
    for i, source in enumerate(sources):
        stream = FeatureStream(source, model, name=f"upload {i}" if isinstance(source, bytes) else source)
        try:
            feats = torch.cat(list(stream))
        except AudioError as exc:
            results[i] = exc
            continue
        if feats.shape[0] <= window:
            batch.append((i, feats, stream))
            continue
        segmenter = CTCSegmenter(tokenizer, model.frame_seconds, options.beam_size)
        segments = [s for logp in windowed(model.model, [feats], options.windows, frame_rate, model.streams)
                    for s in segmenter.push(logp)] + segmenter.finish()
        results[i] = _finished(stream, segments)
    if batch:
        lengths = torch.tensor([f.shape[0] for _, f, _ in batch])
        padded = torch.zeros(len(batch), int(lengths.max()), batch[0][1].shape[1])
        for row, (_, f, _) in enumerate(batch):
            padded[row, : f.shape[0]] = f
        device = model.model.head.weight.device
        with torch.no_grad():
            logits, out_lengths = model.model(padded.to(device), lengths.to(device))
        logp = torch.log_softmax(logits.float(), dim=-1).cpu()
        for row, (i, _, stream) in enumerate(batch):
            segmenter = CTCSegmenter(tokenizer, model.frame_seconds, options.beam_size)
            segments = segmenter.push(logp[row, : int(out_lengths[row])]) + segmenter.finish()
            results[i] = _finished(stream, segments)
    return results


def _finished(stream: FeatureStream, segments: list[Segment]) -> Transcript:
    duration = stream.duration or stream.seconds_read
    for s in segments:     # the last encoder frame may reach past the audio by < 1 frame
        s.end = min(s.end, duration)
        for w in s.words:
            w.end = min(w.end, duration)
    return Transcript(source=str(stream.name), text=" ".join(s.text for s in segments), duration=duration,
                      segments=segments, repairs=stream.repairs)
