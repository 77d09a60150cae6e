"""Attention pieces: rotary positions, sliding-window attention (the LaCT block's local branch,
offline and with a streaming cache) and full attention for the baselines.

All attention goes through F.scaled_dot_product_attention. Sliding-window attention over long
sequences is computed block by block (each block of `window` queries sees at most three
blocks of keys), so its memory is O(T * window) rather than O(T^2). Up to DENSE_MAX_TOKENS
tokens one masked [T, T] call is cheaper than the blocks' gathering (the demo's 60-token
utterances with window 4: 3.2 ms against 7.8 ms forward + backward per layer, crossing over
between 256 and 512 tokens whatever the window). The blocks go to SDPA as a
4-d batch (SDPA's fused CPU kernel takes 4-d inputs only; 5-d fell back to the unfused math
path, slower than full attention at window 2048), and without padding all interior blocks
share one [window, 3 window] mask: only the edge blocks carry masks of their own.

Window rule: causal, query t sees keys s with 0 <= t - s < window; bidirectional, |t - s| < window.
Padded keys are masked; every query may always see itself so rows never become empty (an
all-masked softmax row would give NaN that leaks into later layers through padded frames).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RotaryEmbedding(nn.Module):
    """Rotary position embedding on [..., T, d] with explicit absolute positions."""

    def __init__(self, dim: int, theta: float = 10000.0):
        super().__init__()
        if dim % 2:
            raise ValueError(f"rotary dim must be even, got {dim}")
        inv_freq = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        freqs = positions.to(self.inv_freq.dtype)[:, None] * self.inv_freq[None, :]  # [T, d/2]
        cos, sin = freqs.cos().to(x.dtype), freqs.sin().to(x.dtype)
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


def window_allowed(q_pos: torch.Tensor, k_pos: torch.Tensor, window: int, causal: bool) -> torch.Tensor:
    """[Tq, Tk] bool: which keys each query may attend to under the window rule."""
    diff = q_pos[:, None] - k_pos[None, :]
    if causal:
        return (diff >= 0) & (diff < window)
    return diff.abs() < window


DENSE_MAX_TOKENS = 256   # up to this length one masked call beats the blocks (see above)


def uses_window_blocks(tokens: int, window: int) -> bool:
    """Whether local_attention runs block by block at this length (else one masked call)."""
    return tokens > max(2 * window, DENSE_MAX_TOKENS)


def local_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int, causal: bool,
                    key_valid: torch.Tensor | None = None) -> torch.Tensor:
    """Sliding-window attention over a whole sequence. q, k, v [B, H, T, d]; key_valid [B, T]."""
    if uses_window_blocks(q.shape[2], window):
        return _local_attention_blocked(q, k, v, window, causal, key_valid)
    return _local_attention_dense(q, k, v, window, causal, key_valid)


def _local_attention_dense(q, k, v, window, causal, key_valid):
    T = q.shape[2]
    pos = torch.arange(T, device=q.device)
    allowed = window_allowed(pos, pos, window, causal)                      # [T, T]
    if key_valid is not None:
        eye = torch.eye(T, dtype=torch.bool, device=q.device)
        allowed = (allowed[None] & key_valid[:, None, :]) | eye[None]       # [B, T, T]
        allowed = allowed[:, None]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)


def _local_attention_blocked(q, k, v, window, causal, key_valid):
    B, H, T, d = q.shape
    W = window
    nb = -(-T // W)
    Tp = nb * W
    left, right = W, (0 if causal else W)
    span = left + W + right

    def key_blocks(t):   # [B, H, T, d] -> [B, nb, H, span, d]: block j's keys [j*W - left, j*W + W + right)
        return F.pad(t, (0, 0, left, Tp - T + right)).unfold(2, span, W).permute(0, 2, 1, 4, 3)

    kb, vb = key_blocks(k), key_blocks(v)
    qb = F.pad(q, (0, 0, 0, Tp - T)).view(B, H, nb, W, d).transpose(1, 2)    # [B, nb, H, W, d]
    i = torch.arange(W, device=q.device)
    r = torch.arange(span, device=q.device)
    rel = window_allowed(i + left, r, W, causal)                            # [W, span]
    eye = (i + left)[:, None] == r[None, :]
    kv = torch.ones(B, T, dtype=torch.bool, device=q.device) if key_valid is None else key_valid
    kv = F.pad(kv, (left, Tp - T + right), value=False).unfold(1, span, W)  # [B, nb, span]

    def attend(q_blocks, k_blocks, v_blocks, mask):   # [B, n, H, *, d] blocks as one 4-d SDPA call
        n = q_blocks.shape[1]                           # (its fused CPU kernel)

        def flat(t):
            return t.reshape(B * n, *t.shape[2:])
        out = F.scaled_dot_product_attention(flat(q_blocks), flat(k_blocks), flat(v_blocks), attn_mask=mask)
        return out.view(B, n, H, W, d)

    if key_valid is not None:   # padded batch: every block has its own key mask
        mask = (rel[None, None] & kv[:, :, None, :]) | eye[None, None]        # [B, nb, W, span]
        out = attend(qb, kb, vb, mask.reshape(B * nb, 1, W, span))
    else:
        # Interior blocks (all keys inside the sequence) share one [W, span] mask; only the
        # edge blocks, whose keys run past either end, need masks of their own.
        first = -(-left // W)                      # blocks before `first` reach below position 0
        last = max(first, (T - right) // W)        # blocks from `last` on reach past T
        # Split, not sliced: a slice's backward fills a zero tensor of the whole padded input.
        sizes = [first, last - first, nb - last]
        parts, lo = [], 0
        for n, q_blocks, k_blocks, v_blocks in zip(sizes, *(t.split(sizes, dim=1) for t in (qb, kb, vb))):
            if n == 0:
                continue
            if lo == first and n == last - first:
                parts.append(attend(q_blocks, k_blocks, v_blocks, rel))
            else:
                edge = (rel[None] & kv[0, lo:lo + n, None, :]) | eye[None]    # [n, W, span]
                parts.append(attend(q_blocks, k_blocks, v_blocks, edge.repeat(B, 1, 1).unsqueeze(1)))
            lo += n
        out = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
    return out.transpose(1, 2).reshape(B, H, Tp, d)[:, :, :T]


def cached_window_attention(q: torch.Tensor, k_all: torch.Tensor, v_all: torch.Tensor,
                            q_start: int, window: int) -> torch.Tensor:
    """Causal window attention of new queries over (cache + new) keys, for streaming.

    q [B, H, n, d] at absolute positions q_start..q_start+n-1; k_all/v_all [B, H, m + n, d]
    end at the last query's position.
    """
    n, total = q.shape[2], k_all.shape[2]
    q_pos = torch.arange(q_start, q_start + n, device=q.device)
    k_pos = torch.arange(q_start + n - total, q_start + n, device=q.device)
    allowed = window_allowed(q_pos, k_pos, window, causal=True)
    return F.scaled_dot_product_attention(q, k_all, v_all, attn_mask=allowed)


def full_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool,
                   key_valid: torch.Tensor | None = None) -> torch.Tensor:
    """Full (global) attention for the baselines via PyTorch's fused SDPA."""
    if key_valid is None:
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    T = q.shape[2]
    allowed = key_valid[:, None, :].expand(-1, T, -1)
    if causal:
        allowed = allowed & torch.ones(T, T, dtype=torch.bool, device=q.device).tril()[None]
    allowed = allowed | torch.eye(T, dtype=torch.bool, device=q.device)[None]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed[:, None])


class SelfAttention(nn.Module):
    """Multi-head full self-attention with q/k RMS norm and rotary positions (baselines)."""

    def __init__(self, hidden_size: int, num_heads: int, causal: bool, rope_theta: float = 10000.0):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.causal = causal
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size, bias=False)
        self.q_norm = nn.RMSNorm(self.head_dim)
        self.k_norm = nn.RMSNorm(self.head_dim)
        self.rotary = RotaryEmbedding(self.head_dim, rope_theta)
        self.o_proj = nn.Linear(hidden_size, hidden_size, bias=False)

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        pos = torch.arange(T, device=x.device)
        q = self.rotary(self.q_norm(q), pos)
        k = self.rotary(self.k_norm(k), pos)
        o = full_attention(q, k, v, self.causal, valid)
        return self.o_proj(o.transpose(1, 2).reshape(B, T, D))

    def step(self, x: torch.Tensor, cache: dict, position: int) -> tuple[torch.Tensor, dict]:
        """Incremental causal attention with a growing key/value cache (generation)."""
        B, n, D = x.shape
        q, k, v = self.qkv(x).view(B, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        pos = torch.arange(position, position + n, device=x.device)
        q = self.rotary(self.q_norm(q), pos)
        k = self.rotary(self.k_norm(k), pos)
        k_all = torch.cat([cache["k"], k], dim=2) if cache else k
        v_all = torch.cat([cache["v"], v], dim=2) if cache else v
        q_pos = pos
        k_pos = torch.arange(position + n - k_all.shape[2], position + n, device=x.device)
        allowed = q_pos[:, None] >= k_pos[None, :]
        o = F.scaled_dot_product_attention(q, k_all, v_all, attn_mask=allowed)
        return self.o_proj(o.transpose(1, 2).reshape(B, n, D)), {"k": k_all, "v": v_all}
