"""LaCTASRModel: log-mel -> 4x conv subsampling -> LaCT blocks -> CTC head (blank 0).

Front end, norm and CTC head come from models.asr_base.ASRModel. The encoder is bidirectional
by default (config.lact_causal = False: every token reads the fast weights left by the whole
input). A block-causal model (lact_causal = True) can also run as a stream:
`streaming_inference` feeds feature chunks of any size with a LaCTState and gives exactly the
offline output. `adapt_to_speaker` runs a speaker's utterances in order and keeps the fast
weights they leave behind as the starting weights of later forwards, until `reset_speaker`.
"""

from __future__ import annotations

from typing import Sequence

import torch

from models.adaptation import FastWeightAdaptation
from models.asr_base import ASRModel
from models.block import LaCTBlockStack
from models.config import LaCTAudioConfig
from models.errors import LaCTErrorHandler
from models.lact_layer import FastWeights
from models.state import LaCTState


class LaCTASRModel(FastWeightAdaptation, ASRModel):
    adapted_attribute = "speaker_fast_weights"

    def __init__(self, config: LaCTAudioConfig):
        super().__init__(config, lambda: LaCTBlockStack(config, causal=config.lact_causal),
                         causal_frontend=config.lact_causal)
        self.error_handler = LaCTErrorHandler()
        self.encoder.set_error_handler(self.error_handler)
        self.speaker_fast_weights: list[FastWeights] | None = None

    # ------------------------------------------------------------------ offline
    def encode(self, x: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
        """Adapted speaker weights, if any, are the starting fast weights."""
        x = self.encoder(x, valid, self.adapted_fast_weights(x.device))
        self.error_handler.report()
        return x

    # ------------------------------------------------------------------ streaming
    def init_state(self, batch_size: int) -> LaCTState:
        ref = self.head.weight
        return LaCTState(layers=self.encoder.init_states(batch_size, self.adapted_fast_weights(ref.device)),
                         position=0, frontend=self.frontend.init_state(batch_size, ref),
                         adapted=self.speaker_fast_weights)

    def streaming_inference(self, audio_chunk: torch.Tensor, state: LaCTState | None = None,
                            final: bool = False) -> tuple[torch.Tensor, LaCTState]:
        """Feed feature frames [B, n, mel_bins] of a stream; returns (logits of the encoder
        tokens completed by this chunk [B, m, V], new state). final=True flushes the last < 4
        frames. The given state is not modified, so it can be kept, saved or retried."""
        if not self.config.lact_causal:
            raise ValueError("streaming_inference needs a block-causal model; build it with "
                             "lact_causal: true (the bidirectional encoder looks ahead)")
        self.check_features(audio_chunk, "audio_chunk")
        if state is None:
            state = self.init_state(audio_chunk.shape[0])
        if state.finished:
            raise ValueError("this stream was finished (final=True); start a new state")
        if state.batch_size != audio_chunk.shape[0]:
            raise ValueError(f"state holds {state.batch_size} streams, chunk has {audio_chunk.shape[0]}")
        y, frontend = self.frontend.step(audio_chunk, state.frontend, final)
        layers = state.layers
        if y.shape[1] > 0:
            y, layers = self.encoder.step(y, layers, state.position)
        logits = self.head(self.norm(y))
        self.error_handler.report()
        return logits, LaCTState(layers=layers, position=state.position + logits.shape[1],
                                 frontend=frontend, finished=final, extra=dict(state.extra),
                                 adapted=state.adapted)

    @torch.no_grad()
    def transcribe_streaming(self, features: torch.Tensor, chunk_frames: int = 400,
                             min_chunk_frames: int = 16, state: LaCTState | None = None
                             ) -> torch.Tensor:
        """Whole utterances [B, T, mel] through streaming_inference in pieces of chunk_frames.
        On out-of-memory the piece is retried with half the frames (same result), down to
        min_chunk_frames, then LaCTOutOfMemoryError. Returns logits [B, ceil(T/4), V]."""
        if chunk_frames < 1 or min_chunk_frames < 1:
            raise ValueError("chunk_frames and min_chunk_frames must be >= 1")
        state = state if state is not None else self.init_state(features.shape[0])
        T = features.shape[1]
        outs, start, chunk = [], 0, chunk_frames
        while start < T:
            def piece(c: int, start=start, state=state):
                n = min(c, T - start)
                return self.streaming_inference(features[:, start:start + n], state, final=start + n >= T), n
            ((logits, state), n), chunk = self.error_handler.run_with_oom_retry(piece, chunk, min_chunk_frames)
            outs.append(logits)
            start += n
        return torch.cat(outs, dim=1)

    # ------------------------------------------------------------------ speaker adaptation
    @torch.no_grad()
    def adapt_to_speaker(self, features: torch.Tensor | Sequence[torch.Tensor],
                         feature_lengths: torch.Tensor | None = None) -> "LaCTASRModel":
        """Run one speaker's utterances in order ([N, T, mel] with lengths, or a list of
        [T, mel]); each starts from the fast weights the previous one left. Later forwards and
        streams start from the result until reset_speaker(). Calls accumulate."""
        if isinstance(features, torch.Tensor):
            if features.dim() == 2:
                features = features[None]
            lengths = (feature_lengths if feature_lengths is not None
                       else torch.full((features.shape[0],), features.shape[1]))
            utterances = [features[i, : int(lengths[i])] for i in range(features.shape[0])]
        else:
            utterances = list(features)
        device = self.head.weight.device
        self._adapt(self.encoder, (self.frontend(utt[None].to(device))[0] for utt in utterances))
        return self

    def reset_speaker(self) -> None:
        """Forget the adapted fast weights: back to the learnt initial weights."""
        self._forget_adaptation()
