"""The LaCT layer: large-chunk test-time training with SwiGLU fast weights, side by side with
sliding-window attention that shares the same q/k/v projection (arXiv 2505.23884).

Per LaCT head the fast weights w0, w1, w2 define f(x) = w1 (silu(w0 x) * (w2 x)). For every
chunk of tokens the inner loss L = -sum_t lr_t <f(k_t), v_t> takes one gradient step
(kernels.swiglu_update_grads gives the lr-weighted negative gradient), optionally with momentum
and Muon (kernels.newton_schulz), and each row of every fast weight is then rescaled to its
initial norm (weight-norm retention). Two orders:

  block-causal   (causal=True):  out_i = f_{W_{i-1}}(q_i), then W_i = update(W_{i-1}, chunk i)
  bidirectional  (causal=False): W = update(... update(W_0, chunk 1) ..., chunk n), then
                                 out = f_W(q) for every token: each token reads a memory of
                                 the whole input, later chunks included (one chunk: the
                                 paper's update-then-apply).

What each token reads. Chunks are C = chunk_size consecutive tokens from the start; the last
(leftover) chunk holds the T - (n-1)C tokens left. Block-causal: a token of chunk i reads W_{i-1},
the weights after chunks 1..i-1 (chunk 1 reads the initial weights; no token reads its own
chunk). Bidirectional: every token, whatever its chunk, reads W_n, the weights after all n
chunks, written in order with the leftover chunk last; so a token of chunk 1 reads a memory that
chunk n wrote last, and a layer whose steps replace more than they add (||dW|| ~ ||W||) gives
early tokens mostly the end of the input. The same memory for every token is what makes the
bidirectional layer position-free across chunks: only fast_rotary gives its reads a position.
Bidirectional with padding, a row's chunks of padding only leave its weights as they were (lr 0
and no weight-norm step), so a padded row reads what the same input alone would.

Options (config): `fast_rotary` rotates the fast q/k by their absolute positions (the attention
branch's RotaryEmbedding, after the feature map: rows stay unit-norm), so that for a linear fast
weight a read <R_t q, R_s k> depends on t - s only. `scale_leftover_step` makes a chunk of
n < C tokens step n/C as far as a full one (the factor is applied to the final step, after
momentum and Muon, which would undo a scaled gradient; the momentum buffer keeps the unscaled
step); without it every chunk, however short, takes a full-size step. Both default off, so
earlier checkpoints score as they did.

Inside the layer w0 and w2 live as one [b, 2dh, d] tensor (gate and up in one matmul, one
weight-norm step for both; exact, as retention is per row and momentum elementwise; Muon
orthogonalises the two halves apart). Outside (fast_init, return_fast, streaming states) fast
weights stay the (w0, w1, w2) triple. A non-finite update is rare, so the chunk loop runs
unchecked and its final weights are tested once; only when they are not finite does it run
again with the per-row check of LaCTErrorHandler (same result as checking every chunk, since
a non-finite weight never turns finite again).

q/k of the fast branch are silu'd and L2-normalised per head; per-token learning rates come
from a projection: softplus(proj(x) + softplus^-1(base_lr)), the projection initialised to zero
so that every rate starts at base_lr. The chunk's gradient is divided by its number of (valid)
tokens: the step is base_lr times the mean token gradient, so its size does not grow with the
chunk or utterance length (a sum would move the weights 30x more on a 2048-token chunk than on
a 64-token one). Padded tokens get lr 0 and are left out of the token count and the momentum
average, so they never touch the fast weights. The fast branch's output is multiplied per head
and token by a learnt scale silu(Linear(x)) (starts at 1), so the outer loop can turn each head's
memory up or down. The training forward is vectorised over batch x heads; the only Python loop
is over chunks.

Ablation switches (config): `use_window_attention: false` keeps only the fast-weight branch,
`use_fast_weights: false` only the window attention, and `fast_weight: linear` replaces the
SwiGLU fast weights by one matrix per head, f(x) = W x, updated by W += sum_t lr_t v_t k_t^T
(the negative gradient of the same inner loss); models/fast_weight.py holds what differs between
the two kinds. Streaming (step, flush) runs the same chunk loop as the offline forward, carrying a
LayerState (models/layer_state.py) from one piece to the next.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import replace
from typing import Iterator

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from models.attention import RotaryEmbedding, cached_window_attention, local_attention, uses_window_blocks
from models.config import LaCTAudioConfig
from models.errors import LaCTErrorHandler
from models.fast_feature_map import fast_feature_map
from models.fast_output_merge import fast_output_merge
from models.fast_weight import FAST_WEIGHT_KINDS, FastWeights, LinearFastWeight, SwiGLUFastWeight
from models.layer_state import LayerState
from models.row_norm_retention import retain_row_norms


def per_batch_row(w: torch.Tensor, batch: int) -> torch.Tensor:
    """Per-head [H, ...] -> [batch*H, ...]: the same weights for every batch element."""
    return w.unsqueeze(0).expand(batch, *w.shape).reshape(batch * w.shape[0], *w.shape[1:])


def inverse_softplus(x: float) -> float:
    return x + math.log(-math.expm1(-x))


def chunk_momentum(mom: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """Momentum coefficient of one chunk: mean over its valid tokens. mom/valid [b, n] -> [b]."""
    if valid is None:
        return mom.mean(dim=1)
    return (mom * valid).sum(dim=1) / valid.sum(dim=1).clamp(min=1.0)


def query_chunks(fq: torch.Tensor | None, read: int, chunk: int, count: int):
    """fq [b, n, d] split as the `count` key chunks of chunk tokens are, when the first `read`
    keys have no query here (a stream's pending chunk, read already); no fq: no queries."""
    if fq is None:
        return [None] * count
    if read == 0:
        return fq.split(chunk, dim=1)
    first = min(chunk - read, fq.shape[1])
    return (fq[:, :first],) + fq[:, first:].split(chunk, dim=1)


@torch.no_grad()
def relative_change(start: FastWeights, end: FastWeights) -> float:
    """||end - start|| / ||start|| per [batch*head] row, averaged over rows and weights."""
    ratios = [((e - s).flatten(1).norm(dim=1) / s.flatten(1).norm(dim=1).clamp(min=1e-12)).mean()
              for s, e in zip(start, end)]
    return float(torch.stack(ratios).mean())


def fast_weight_changes(model: nn.Module) -> list[float]:
    """Per LaCT layer: how far its last recorded forward (eval mode, or training with
    track_memory) moved the fast weights from their start, ||W_end - W_start|| / ||W_start||
    averaged over weights, batch and heads."""
    return [m.fast_change for m in model.modules()
            if isinstance(m, LaCTLayer) and m.fast_change is not None]


def memory_stats(model: nn.Module) -> dict[str, float]:
    """MLflow-ready figures of the last recorded forward, per LaCT layer i:
    fast_weight_change_layer{i} and fast_share_layer{i} (the fast branch's share of the mixer
    output, ||fast|| / (||fast|| + ||attention||) before the output projection)."""
    layers = [m for m in model.modules() if isinstance(m, LaCTLayer) and m.fast_change is not None]
    out = {}
    for i, m in enumerate(layers):
        out[f"fast_weight_change_layer{i}"] = m.fast_change
        if m.fast_share is not None:
            out[f"fast_share_layer{i}"] = m.fast_share
    return out


def track_memory(model: nn.Module, enabled: bool) -> None:
    """Record fast_change / fast_share in training-mode forwards too (a few norms per layer;
    the training loop turns it on for the steps it logs)."""
    for m in model.modules():
        if isinstance(m, LaCTLayer):
            m.track_memory = enabled


def inverse_silu_of_one() -> float:
    """b with silu(b) = 1 (Newton's method), the output scale's starting bias."""
    b = 1.0
    for _ in range(20):
        s = 1.0 / (1.0 + math.exp(-b))
        b -= (b * s - 1.0) / (s * (1.0 + b * (1.0 - s)))
    return b


class LaCTLayer(nn.Module):
    """Token mixer of a LaCT block: window attention + fast-weight branch, one output projection."""

    def __init__(self, config: LaCTAudioConfig, causal: bool):
        super().__init__()
        D = config.hidden_size
        self.causal = causal
        self.hidden_size = D
        self.num_attention_heads = config.num_attention_heads
        self.attention_head_dim = config.attention_head_dim
        self.num_lact_heads = config.num_lact_heads
        self.lact_head_dim = config.lact_head_dim
        self.chunk_size = config.chunk_size
        self.window_size = config.window_size
        self.use_muon = config.use_muon
        # update_fast_weights false: the static_fast_weights arm (models/arms.py)
        self.update_fast_weights = config.update_fast_weights and config.use_fast_weights
        self.use_momentum = config.use_momentum and self.update_fast_weights
        self.muon_steps = config.muon_steps
        self.base_lr_inv = inverse_softplus(config.base_lr)
        self.use_window_attention = config.use_window_attention
        self.use_fast_weights = config.use_fast_weights
        self.fast_weight = config.fast_weight
        self.scale_leftover_step = config.scale_leftover_step
        self.fast_change: float | None = None   # set by eval-mode forwards, see fast_weight_changes
        self.fast_share: float | None = None    # likewise, see memory_stats
        self.track_memory = False               # record both in training forwards too

        self.qkv = nn.Linear(D, 3 * D, bias=False)
        if self.use_window_attention:
            self.q_norm = nn.RMSNorm(self.attention_head_dim)
            self.k_norm = nn.RMSNorm(self.attention_head_dim)
            self.rotary = RotaryEmbedding(self.attention_head_dim, config.rope_theta)
        self.o_proj = nn.Linear(D, D, bias=False)
        self.error_handler = LaCTErrorHandler()
        self.skip_updates = False   # ablation switch, see skip_fast_weight_updates()
        if self.use_fast_weights:
            self._build_fast_branch(config)

    def _build_fast_branch(self, config: LaCTAudioConfig) -> None:
        D, H, dl = config.hidden_size, config.num_lact_heads, config.lact_head_dim
        # Initial ("slow") fast weights, learnt by the outer loop.
        for name, w in zip(self.fast_kind.names, self.fast_kind.initial(H, dl, config.fast_hidden_dim)):
            setattr(self, name, w)
        self.lr_proj = None
        if self.update_fast_weights:
            self.lr_proj = nn.Linear(D, len(self.slow_weights) * H)  # one lr per token and weight
            nn.init.zeros_(self.lr_proj.weight)   # every rate starts at base_lr; learnt from there
            nn.init.zeros_(self.lr_proj.bias)
        # Per-head output scale silu(Linear(x)), starting at 1 for every token.
        self.fast_scale = nn.Linear(D, H)
        nn.init.zeros_(self.fast_scale.weight)
        nn.init.constant_(self.fast_scale.bias, inverse_silu_of_one())
        self.qk_scale = nn.Parameter(torch.ones(2, D))
        self.qk_offset = nn.Parameter(torch.zeros(2, D))
        self.fast_norm = nn.RMSNorm(dl)
        self.momentum_proj = nn.Linear(D, H) if self.use_momentum else None
        # rotary positions on the fast q/k (fast_rotary); a non-persistent buffer, so the
        # state dict is the same with the option on or off
        self.fast_rotary = RotaryEmbedding(dl, config.rope_theta) if config.fast_rotary else None

    def __setstate__(self, state: dict) -> None:
        # Registered models are pickled whole (mlflow.pytorch): a layer pickled before an option
        # existed gets the value that reproduces how it was trained.
        super().__setstate__(state)
        added = {"update_fast_weights": self.__dict__.get("use_fast_weights", True),
                 "scale_leftover_step": False, "fast_rotary": None}
        for name, value in added.items():
            if name not in self.__dict__ and name not in self._modules:
                setattr(self, name, value)

    @property
    def fast_kind(self) -> SwiGLUFastWeight | LinearFastWeight:
        """What the fast weights are (config fast_weight): models/fast_weight.py."""
        return FAST_WEIGHT_KINDS[self.fast_weight]

    @property
    def slow_weights(self) -> FastWeights:
        """The learnt initial fast weights: (w0, w1, w2) for SwiGLU, (w0,) for linear."""
        return tuple(getattr(self, name) for name in self.fast_kind.names)

    # ------------------------------------------------------------------ projections
    def _project(self, x: torch.Tensor, valid: torch.Tensor | None,
                 positions: torch.Tensor | None = None):
        """x [B, T, D] at absolute positions [T] (default 0..T-1) -> raw q, k, v [B, T, D] (the
        window attention's, see _window_attention) and the fast branch's fq, fk, fv
        [B*Hl, T, dl] (fq, fk rotated by position with fast_rotary), learning rates and momentum."""
        B, T, D = x.shape
        Hl, dl = self.num_lact_heads, self.lact_head_dim
        q, k, v = self.qkv(x).split(D, dim=-1)
        if not self.use_fast_weights:
            return q, k, v, None, None, None, None, None

        fq = fast_feature_map(q, self.qk_scale[0], self.qk_offset[0], Hl)
        fk = fast_feature_map(k, self.qk_scale[1], self.qk_offset[1], Hl)
        if self.fast_rotary is not None:   # [B*Hl, T, dl] rows rotated by position, still unit-norm
            if positions is None:
                positions = torch.arange(T, device=x.device)
            fq, fk = self.fast_rotary(fq, positions), self.fast_rotary(fk, positions)
        fv = F.silu(v).view(B, T, Hl, dl).transpose(1, 2).reshape(B * Hl, T, dl)
        if self.lr_proj is None:           # static fast weights: nothing to update them with
            return q, k, v, fq, fk, fv, None, None
        n = len(self.slow_weights)                                          # lrs per token
        lr = F.softplus(self.lr_proj(x) + self.base_lr_inv)                  # [B, T, n Hl]
        if valid is not None:
            lr = lr * valid[..., None].to(lr.dtype)
        lr = lr.view(B, T, n, Hl).permute(2, 0, 3, 1).reshape(n, B * Hl, T)
        mom = None
        if self.momentum_proj is not None:
            mom = torch.sigmoid(self.momentum_proj(x)).transpose(1, 2).reshape(B * Hl, T)
        return q, k, v, fq, fk, fv, lr, mom

    def _attention_heads(self, q, k, v, positions):
        """Raw q, k, v [B, T, D] -> the window attention's heads [B, Ha, T, da]: q and k
        RMS-normalised and rotated."""
        B, T, _ = q.shape
        Ha, da = self.num_attention_heads, self.attention_head_dim
        qa = self.rotary(self.q_norm(q.view(B, T, Ha, da)).transpose(1, 2), positions)
        ka = self.rotary(self.k_norm(k.view(B, T, Ha, da)).transpose(1, 2), positions)
        return qa, ka, v.view(B, T, Ha, da).transpose(1, 2)

    def _window_attention(self, q, k, v, positions, valid):
        """The window-attention branch, raw q, k, v [B, T, D] -> [B, T, D]."""
        B, T, D = q.shape
        attn = local_attention(*self._attention_heads(q, k, v, positions), self.window_size, self.causal, valid)
        return attn.transpose(1, 2).reshape(B, T, D)

    def _merge_fast(self, fw: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """[B*Hl, T, dl] fast outputs, normalised and scaled per head and token -> [B, T, D]."""
        scale = F.silu(self.fast_scale(x))                                   # [B, T, Hl]
        return fast_output_merge(fw, self.fast_norm.weight, scale, self.fast_norm.eps)

    # ------------------------------------------------------------------ fast weights
    def initial_fast_weights(self, batch: int, fast_init: FastWeights | None = None) -> FastWeights:
        """[B*Hl, ...] copies of the slow initial weights (or of adapted per-head weights)."""
        src = fast_init if fast_init is not None else self.slow_weights
        return tuple(per_batch_row(w, batch) for w in src)

    def _update(self, W, norms, mbuf, k, v, lr, mom_coef, tokens, checked: bool):
        """One chunk's fast-weight step on inner-layout weights. tokens: the chunk's valid token
        count per row ([b] tensor or int); the gradient is a mean over them, so the step size
        does not depend on the chunk length (with scale_leftover_step, a chunk shorter than
        chunk_size then steps tokens/chunk_size as far). `checked`: a non-finite result is
        dropped per row by the error handler (see the module docstring)."""
        if self.skip_updates:
            return W, mbuf
        if isinstance(tokens, torch.Tensor):
            lr = lr / tokens.clamp(min=1.0)[None, :, None].to(lr.dtype)
        else:
            lr = lr / max(int(tokens), 1)
        dws = self.fast_kind.update_grads(W, k, v, lr)
        new_buf = None
        if mbuf is not None:
            c = mom_coef[:, None, None].to(dws[0].dtype)
            dws = tuple(dw + c * m for dw, m in zip(dws, mbuf))
            new_buf = dws
        if self.use_muon:
            dws = self.fast_kind.orthogonalise(dws, self.muon_steps)
        scale = self._leftover_scale(tokens)
        if scale is not None:   # a short chunk's step, n/C of a full one (scale_leftover_step)
            dws = tuple(dw * (scale.to(dw.dtype) if torch.is_tensor(scale) else scale) for dw in dws)
        cand = [retain_row_norms(w + dw, n) for w, dw, n in zip(W, dws, norms)]
        if not checked:
            return tuple(cand), new_buf
        if new_buf is None:
            chosen, _ = self.error_handler.keep_finite(tuple(W), tuple(cand))
            return chosen, None
        chosen, _ = self.error_handler.keep_finite(tuple(W) + tuple(mbuf), tuple(cand) + tuple(new_buf))
        return chosen[:len(W)], chosen[len(W):]

    def _leftover_scale(self, tokens) -> torch.Tensor | float | None:
        """scale_leftover_step: a chunk's step relative to a full chunk's, tokens / chunk_size
        ([b, 1, 1] per row, or a float); None when every step is full-size (the option off, or
        a full chunk)."""
        if not self.scale_leftover_step:
            return None
        C = self.chunk_size
        if isinstance(tokens, torch.Tensor):
            return (tokens.float().clamp(max=C) / C)[:, None, None]
        return None if tokens >= C else tokens / C

    def _run_chunks(self, W, norms, fq, fk, fv, lr, mom, valid_bh, update_last: bool, mbuf=None,
                    read: int = 0, checked: bool = False):
        """Inner-layout fast weights through the chunks of fk/fv/lr/mom (chunk_size tokens each
        from the start): (fast-branch output for fq, final weights, final momentum buffers).
        norms: each row's norm in W, which weight-norm retention keeps; mbuf: the momentum
        buffers to go on from (zeros when None). A stream (step, flush) continues a chunk: its
        first `read` keys are the pending chunk's, read already and so not in fq (None: no new
        tokens at all). update_last: the last chunk steps the weights too (bidirectional; else
        only what return_fast, a flush or a stream's next tokens would read)."""
        if not self.update_fast_weights:   # every token reads the learnt weights as they are
            return self.fast_kind.apply(W, fq), W, mbuf
        T = fk.shape[1]
        C = self.chunk_size
        start = W, mbuf
        if mbuf is None and mom is not None:
            mbuf = tuple(torch.zeros_like(w) for w in W)
        outs = []
        # Chunks by torch.split, not slicing: a slice's backward fills a zero tensor of the whole
        # input for every chunk (a tenth of a 16k-token step), a split's joins the chunks once.
        count = -(-T // C)

        def chunks(t, dim=1):
            return [None] * count if t is None else t.split(C, dim=dim)

        for i, (cq, ck, cv, clr, cmom, cvalid) in enumerate(zip(
                query_chunks(fq, read, C, count), chunks(fk), chunks(fv), chunks(lr, dim=2), chunks(mom),
                chunks(valid_bh))):
            if self.causal and cq is not None:
                outs.append(self.fast_kind.apply(W, cq))
            if i < count - 1 or update_last:
                coef = None if mom is None else chunk_momentum(cmom, cvalid)
                tokens = ck.shape[1] if cvalid is None else cvalid.sum(dim=1)
                new, mbuf = self._update(W, norms, mbuf, ck, cv, clr, coef, tokens, checked)
                if valid_bh is not None and not self.causal and T > C:
                    # A chunk of padding only must leave a row's memory as it was (its lr is 0,
                    # but the weight-norm step would still rescale): the whole input reads it.
                    real = cvalid.any(dim=1)[:, None, None]
                    new = tuple(torch.where(real, n, w) for n, w in zip(new, W))
                W = new
        if not checked and not bool(torch.isfinite(torch.stack([w.sum() for w in W])).all()):
            return self._run_chunks(start[0], norms, fq, fk, fv, lr, mom, valid_bh, update_last, start[1], read,
                                    checked=True)
        if fq is None:                     # a stream's flush: no new tokens to read
            return None, W, mbuf
        if not self.causal:                # every token reads the whole-input memory
            return self.fast_kind.apply(W, fq), W, mbuf
        return torch.cat(outs, dim=1), W, mbuf

    # ------------------------------------------------------------------ offline forward
    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None,
                fast_init: FastWeights | None = None, return_fast: bool = False):
        """x [B, T, D]; valid [B, T] bool (False = padding). With return_fast, also the fast
        weights after every token (the last partial chunk included) as [B*Hl, ...]."""
        B, T, _ = x.shape
        positions = torch.arange(T, device=x.device)
        q, k, v, fq, fk, fv, lr, mom = self._project(x, valid, positions)
        mixed = None                    # the window attention's output, then plus the fast branch's
        if self.use_window_attention:
            if torch.is_grad_enabled() and uses_window_blocks(T, self.window_size):
                # Long inputs: the backward recomputes this branch from q, k, v (which the fast
                # branch keeps anyway) instead of keeping its normed q/k, the blocks' key/value
                # copies and its output: at 16k tokens 105 MiB less per layer, below the
                # full-attention baseline's memory (bench/sequence_scaling.py). The recomputation
                # costs ~1 % of the step at window 64, 18-20 % at window 2048.
                mixed = torch.utils.checkpoint.checkpoint(self._window_attention, q, k, v, positions, valid,
                                                          use_reentrant=False)
            else:
                mixed = self._window_attention(q, k, v, positions, valid)
        W = ()
        if self.use_fast_weights:
            valid_bh = None
            if valid is not None:
                valid_bh = valid[:, None, :].expand(B, self.num_lact_heads, T).reshape(-1, T).to(fq.dtype)
            src = self.fast_kind.fuse(fast_init if fast_init is not None else self.slow_weights)
            W0 = tuple(per_batch_row(w, B) for w in src)
            # the row norms of the per-head weights, then copied: not B times the same norm
            norms = tuple(per_batch_row(w.norm(dim=2, keepdim=True), B) for w in src)
            fw, W, _ = self._run_chunks(W0, norms, fq, fk, fv, lr, mom, valid_bh,
                                        update_last=not self.causal or return_fast)
            fast = self._merge_fast(fw, x)
            W = self.fast_kind.split(W)
            if not self.training or self.track_memory:
                self._record_memory(self.fast_kind.split(W0), W, fast, mixed)
            mixed = fast if mixed is None else mixed + fast
        out = self.o_proj(mixed)
        return (out, W) if return_fast else out

    @torch.no_grad()
    def _record_memory(self, W0: FastWeights, W: FastWeights, fast: torch.Tensor,
                       attn: torch.Tensor | None) -> None:
        self.fast_change = relative_change(W0, W)
        f, a = float(fast.norm()), 0.0 if attn is None else float(attn.norm())
        self.fast_share = f / max(f + a, 1e-12)

    # ------------------------------------------------------------------ streaming
    def init_state(self, batch: int, fast_init: FastWeights | None = None) -> LayerState:
        ref = self.qkv.weight
        cache = (batch, self.num_attention_heads, 0, self.attention_head_dim)
        st = LayerState(window_keys=ref.new_zeros(cache), window_values=ref.new_zeros(cache))
        if not self.use_fast_weights:
            return st
        W = tuple(w.detach().clone() for w in self.initial_fast_weights(batch, fast_init))
        rows, dl = W[0].shape[0], self.lact_head_dim
        st.fast, st.norms = W, tuple(w.norm(dim=2, keepdim=True) for w in W)
        if self.use_momentum:
            st.momentum = tuple(torch.zeros_like(w) for w in W)
            st.pending_momentum = ref.new_zeros(rows, 0)
        st.pending_keys, st.pending_values = ref.new_zeros(rows, 0, dl), ref.new_zeros(rows, 0, dl)
        st.pending_lr = ref.new_zeros(len(W), rows, 0)
        return st

    def step(self, x: torch.Tensor, st: LayerState, position: int) -> tuple[torch.Tensor, LayerState]:
        """Block-causal forward of n new tokens at absolute `position`, carrying the state.
        Equals the offline forward on the concatenated stream. Does not modify `st`."""
        if not self.causal:
            raise ValueError("streaming needs a block-causal LaCT layer (config lact_causal: true)")
        B, n, _ = x.shape
        positions = torch.arange(position, position + n, device=x.device)
        q, k, v, fq, fk, fv, lr, mom = self._project(x, None, positions)
        new = replace(st)
        mixed = x.new_zeros(B, n, self.hidden_size)
        if self.use_window_attention:
            qa, ka, va = self._attention_heads(q, k, v, positions)
            ck = torch.cat([st.window_keys, ka], dim=2)
            cv = torch.cat([st.window_values, va], dim=2)
            attn = cached_window_attention(qa, ck, cv, position, self.window_size)
            mixed = mixed + attn.transpose(1, 2).reshape(B, n, self.hidden_size)
            start = max(0, ck.shape[2] - (self.window_size - 1))   # later queries see < window back
            new.window_keys, new.window_values = ck[:, :, start:], cv[:, :, start:]
        if not self.use_fast_weights:
            return self.o_proj(mixed), new
        fw = self._stream_fast(new, fq, fk, fv, lr, mom)
        return self.o_proj(mixed + self._merge_fast(fw, x)), new

    def flush(self, st: LayerState) -> LayerState:
        """Apply the update of a pending partial chunk (end of an utterance used for adaptation)."""
        if not self.update_fast_weights or st.pending == 0:
            return st
        new = replace(st)
        self._stream_fast(new, None, None, None, None, None)
        return new

    def _stream_fast(self, st: LayerState, fq, fk, fv, lr, mom) -> torch.Tensor | None:
        """A stream's fast branch on new tokens (none: flush the pending chunk): their output, `st`
        advanced in place. They join the pending chunk; every chunk they fill (and with a flush
        the partial one) steps the fast weights, the rest is left pending."""
        kind = self.fast_kind
        W = kind.fuse(st.fast)
        if not self.update_fast_weights:
            return kind.apply(W, fq)
        read = st.pending
        keys = st.pending_keys if fk is None else torch.cat([st.pending_keys, fk], dim=1)
        values = st.pending_values if fv is None else torch.cat([st.pending_values, fv], dim=1)
        lrs = st.pending_lr if lr is None else torch.cat([st.pending_lr, lr], dim=2)
        moms = st.pending_momentum if mom is None else torch.cat([st.pending_momentum, mom], dim=1)
        T, C = keys.shape[1], self.chunk_size
        done = T if fq is None else T - T % C                 # tokens whose chunk steps now
        mbuf = kind.fuse(st.momentum) if self.use_momentum else None
        fw, W, mbuf = self._run_chunks(W, kind.fuse(st.norms), fq, keys, values, lrs, moms, None,
                                       update_last=done == T, mbuf=mbuf, read=read, checked=True)
        st.fast = tuple(w.contiguous() for w in kind.split(W))
        if mbuf is not None:
            st.momentum = tuple(m.contiguous() for m in kind.split(mbuf))
            st.pending_momentum = moms[:, done:].clone()
        st.pending_keys, st.pending_values = keys[:, done:].clone(), values[:, done:].clone()
        st.pending_lr = lrs[:, :, done:].clone()
        return fw


@contextlib.contextmanager
def skip_fast_weight_updates(model: nn.Module) -> Iterator[nn.Module]:
    """Inside the block every LaCT layer of `model` keeps its initial fast weights: each
    test-time update is skipped (the fast-weight ablation of the evaluation suite)."""
    layers = [m for m in model.modules() if isinstance(m, LaCTLayer)]
    saved = [layer.skip_updates for layer in layers]
    for layer in layers:
        layer.skip_updates = True
    try:
        yield model
    finally:
        for layer, value in zip(layers, saved):
            layer.skip_updates = value
