"""CTC decoding: greedy collapse rules; prefix beam search is exact with a wide beam and can
beat the best path."""

import itertools
import math

import torch

from models import ctc_greedy_decode, ctc_prefix_beam_search


def logits_from_probs(p):
    return torch.tensor(p, dtype=torch.float64).log()[None]


def test_greedy_merges_repeats_and_drops_blanks_within_length():
    ids = torch.tensor([[1, 1, 0, 1, 2, 2, 0, 0, 3, 3]])
    logits = torch.nn.functional.one_hot(ids, 5).float()
    assert ctc_greedy_decode(logits) == [[1, 1, 2, 3]]
    assert ctc_greedy_decode(logits, torch.tensor([6])) == [[1, 1, 2]]


def _collapse(path, blank=0):
    out = []
    prev = None
    for c in path:
        if c != prev and c != blank:
            out.append(c)
        prev = c
    return tuple(out)


def _brute_force_best(logp):
    T, V = logp.shape
    totals = {}
    for path in itertools.product(range(V), repeat=T):
        s = sum(float(logp[t, c]) for t, c in enumerate(path))
        key = _collapse(path)
        totals[key] = totals.get(key, 0.0) + math.exp(s)
    return list(max(totals, key=totals.get))


def test_prefix_beam_search_with_a_wide_beam_finds_the_most_probable_labelling():
    torch.manual_seed(0)
    for _ in range(5):
        logits = torch.randn(1, 5, 4, dtype=torch.float64) * 2
        want = _brute_force_best(torch.log_softmax(logits[0], -1))
        assert ctc_prefix_beam_search(logits, beam_size=200, token_candidates=4) == [want]


def test_prefix_beam_search_beats_best_path():
    # best path is blank-blank -> []; but "1" has total probability 1 - 0.6^2 = 0.64 > 0.36
    logits = logits_from_probs([[0.6, 0.4], [0.6, 0.4]])
    assert ctc_greedy_decode(logits) == [[]]
    assert ctc_prefix_beam_search(logits, beam_size=4) == [[1]]


def test_beam_search_respects_lengths_and_batches():
    logits = torch.nn.functional.one_hot(torch.tensor([[1, 0, 2, 2, 3], [2, 2, 0, 2, 1]]), 4).double() * 10
    assert ctc_prefix_beam_search(logits, torch.tensor([3, 5]), beam_size=3) == [[1, 2], [2, 2, 1]]
