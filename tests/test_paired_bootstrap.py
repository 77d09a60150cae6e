"""The paired bootstrap against cases whose answer is known."""

import numpy as np
import pytest

from jobs.evaluation.paired_bootstrap import excludes_zero, paired_bootstrap


def test_constant_difference_gives_a_point_interval():
    # model a makes exactly one more error than b in every 10-character utterance: every
    # resample has difference 0.1, so the interval is the point 0.1
    b = np.arange(20) % 4
    r = paired_bootstrap(b + 1, b, np.full(20, 10), resamples=500)
    assert r["difference"] == pytest.approx(0.1)
    assert r["low"] == pytest.approx(0.1) and r["high"] == pytest.approx(0.1)
    assert r["p_value"] == pytest.approx(1 / 500) and excludes_zero(r)


def test_interval_matches_the_normal_approximation():
    # unit totals: the metric is the mean per-unit difference, whose standard error is
    # sd / sqrt(n); the 95 % bootstrap interval is mean +- 1.96 SE up to sampling noise
    rng = np.random.default_rng(1)
    n = 400
    a = rng.normal(0.30, 0.1, n)
    b = a - rng.normal(0.02, 0.05, n)
    diff = a - b
    r = paired_bootstrap(a, b, np.ones(n), resamples=4000, seed=3)
    se = diff.std(ddof=1) / np.sqrt(n)
    assert r["difference"] == pytest.approx(diff.mean())
    assert r["low"] == pytest.approx(diff.mean() - 1.96 * se, abs=0.15 * 1.96 * se)
    assert r["high"] == pytest.approx(diff.mean() + 1.96 * se, abs=0.15 * 1.96 * se)


def test_no_difference_is_not_significant_and_swapping_negates():
    rng = np.random.default_rng(2)
    totals = rng.integers(20, 80, 150)
    a = rng.binomial(totals, 0.15)
    b = rng.binomial(totals, 0.15)
    ab = paired_bootstrap(a, b, totals, seed=5)
    ba = paired_bootstrap(b, a, totals, seed=5)
    assert not excludes_zero(ab) and ab["p_value"] > 0.05   # same error rate: no difference found
    assert ba["difference"] == pytest.approx(-ab["difference"])
    assert ba["low"] == pytest.approx(-ab["high"]) and ba["high"] == pytest.approx(-ab["low"])
    assert ab["a"] == pytest.approx(a.sum() / totals.sum())


def test_seeded_and_reproducible():
    rng = np.random.default_rng(4)
    totals = rng.integers(5, 50, 60)
    a, b = rng.binomial(totals, 0.2), rng.binomial(totals, 0.18)
    first = paired_bootstrap(a, b, totals, seed=7, resamples=2500)
    assert paired_bootstrap(a, b, totals, seed=7, resamples=2500) == first
    assert paired_bootstrap(a, b, totals, seed=8, resamples=2500)["low"] != first["low"]


@pytest.mark.parametrize("args", [([1, 2], [1], [3, 3]), ([], [], []), ([1], [1], [0])])
def test_bad_inputs_are_refused(args):
    with pytest.raises(ValueError):
        paired_bootstrap(*args)
