"""Sliding-window attention: blocked long-sequence path == dense masked path; window rule."""

import pytest
import torch

from models.attention import _local_attention_blocked, _local_attention_dense


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("T,window", [(50, 7), (64, 8), (33, 16), (130, 16), (8, 3)])
def test_blocked_equals_dense(causal, T, window):
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, T, 8, dtype=torch.float64) for _ in range(3))
    valid = torch.arange(T)[None] < torch.tensor([[T], [T - 11]])
    for kv in (None, valid):
        dense = _local_attention_dense(q, k, v, window, causal, kv)
        blocked = _local_attention_blocked(q, k, v, window, causal, kv)
        torch.testing.assert_close(blocked, dense)
        # gradients too: the blocks are copies of q, k, v, so their gradients must add back up
        leaves = [t.clone().requires_grad_(True) for t in (q, k, v)]
        weights = torch.randn_like(dense)
        g_dense = torch.autograd.grad((_local_attention_dense(*leaves, window, causal, kv) * weights).sum(), leaves)
        g_blocked = torch.autograd.grad((_local_attention_blocked(*leaves, window, causal, kv) * weights).sum(), leaves)
        for gb, gd in zip(g_blocked, g_dense):
            torch.testing.assert_close(gb, gd)


def test_window_rule_causal():
    torch.manual_seed(1)
    T, W = 40, 5
    q, k, v = (torch.randn(1, 1, T, 4, dtype=torch.float64) for _ in range(3))
    out = _local_attention_blocked(q, k, v, W, True, None)
    v2 = v.clone()
    v2[:, :, 20] += 1.0          # visible to queries 20..24 only
    out2 = _local_attention_blocked(q, k, v2, W, True, None)
    changed = (out2 - out).abs().sum(-1)[0, 0] > 0
    assert changed.nonzero().flatten().tolist() == [20, 21, 22, 23, 24]
