"""One recording (URI or bytes) -> Transcript: audio stream -> log-probs -> timed segments."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from jobs.inference.alignment import CTCSegmenter, Segment
from jobs.inference.audio_stream import FeatureStream
from jobs.inference.model import InferenceModel
from jobs.inference.recognizer import WindowConfig, log_probs

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
    duration = stream.duration or stream.seconds_read
    for s in segments:     # the last encoder frame may reach past the audio by < 1 frame
        s.end = min(s.end, duration)
        for w in s.words:
            w.end = min(w.end, duration)
    return Transcript(source=stream.name, text=" ".join(s.text for s in segments), duration=duration,
                      segments=segments, repairs=stream.repairs)
