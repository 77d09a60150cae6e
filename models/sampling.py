"""Next-token sampling shared by the generators (temperature, top-k, seeded torch.Generator)."""

from __future__ import annotations

from typing import Callable, Iterator

import torch

StepFn = Callable[[torch.Tensor, object], tuple[torch.Tensor, object]]


def sample_next_token(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """logits [B, V] -> token ids [B]. temperature 0 means greedy (argmax)."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1 or None, got {top_k}")
    logits = logits.float()
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


def check_prompt(prompt: torch.Tensor, max_length: int, vocab_size: int) -> None:
    if prompt.dim() != 2 or prompt.shape[1] < 1:
        raise ValueError(f"prompt must be [B, P] with P >= 1, got {tuple(prompt.shape)}")
    if prompt.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"prompt must hold integer token ids, got {prompt.dtype}")
    if max_length <= prompt.shape[1]:
        raise ValueError(f"max_length={max_length} must exceed the prompt length {prompt.shape[1]} "
                         "(max_length counts prompt + generated tokens)")
    if int(prompt.min()) < 0 or int(prompt.max()) >= vocab_size:
        raise ValueError(f"prompt token ids must be in [0, {vocab_size})")


def token_stream(step: StepFn, state: object, prompt: torch.Tensor, max_length: int,
                 temperature: float, top_k: int | None, generator: torch.Generator | None
                 ) -> Iterator[torch.Tensor]:
    """Yield max_length - P sampled tokens [B], feeding each back through `step`."""
    logits, state = step(prompt.long(), state)
    remaining = max_length - prompt.shape[1]
    for i in range(remaining):
        tok = sample_next_token(logits[:, -1], temperature, top_k, generator)
        yield tok
        if i + 1 < remaining:
            logits, state = step(tok[:, None], state)


def chunked(tokens: Iterator[torch.Tensor], chunk_tokens: int) -> Iterator[torch.Tensor]:
    """Group a stream of [B] tokens into [B, <= chunk_tokens] tensors."""
    if chunk_tokens < 1:
        raise ValueError(f"chunk_tokens must be >= 1, got {chunk_tokens}")
    buf: list[torch.Tensor] = []
    for tok in tokens:
        buf.append(tok)
        if len(buf) == chunk_tokens:
            yield torch.stack(buf, dim=1)
            buf = []
    if buf:
        yield torch.stack(buf, dim=1)
