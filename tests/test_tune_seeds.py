"""A study's points over seeds (jobs/tuning/seeds.py): grouping, per-seed differences and the
paired interval against the reference arm, on trial rows of known values."""

import pytest

from jobs.evaluation.paired_bootstrap import paired_bootstrap
from jobs.tuning.seeds import compare_to_reference, group_trials, markdown


def trial(arm, seed, errors, status="completed"):
    """A completed ASR trial of `arm` whose dev utterances have these char errors (10 chars each)."""
    units = [{"utt_id": f"u{i}", "char_errors": e, "char_total": 10} for i, e in enumerate(errors)]
    return {"params": {"arm": arm, "seed": seed}, "settings": {"arm": arm}, "status": status,
            "metric": sum(errors) / (10 * len(errors)), "units": units}


def test_points_are_grouped_over_seeds_and_compared_with_the_reference():
    trials = [trial("full_attention", 0, [2, 3, 1, 4]), trial("full_attention", 1, [3, 3, 2, 4]),
              trial("lact", 0, [1, 2, 1, 3]), trial("lact", 1, [2, 3, 1, 2]),
              trial("lact", 2, [0, 0, 0, 0]),                        # no reference seed 2: left out
              trial("window", 0, [9, 9, 9, 9], status="error")]
    groups = group_trials(trials)
    assert [(g["arm"], g["seeds"]) for g in groups] == [("full_attention", [0, 1]), ("lact", [0, 1, 2])]
    assert groups[0]["mean"] == pytest.approx((0.25 + 0.3) / 2)
    [row] = compare_to_reference(groups, "full_attention", "asr", seed=1, resamples=2000)
    assert row["seeds"] == [0, 1] and row["seeds_lower"] == 2
    assert row["per_seed_difference"] == pytest.approx([0.175 - 0.25, 0.2 - 0.3])
    # the interval is the paired bootstrap of per-utterance errors summed over the common seeds
    expected = paired_bootstrap([3, 5, 2, 5], [5, 6, 3, 8], [20] * 4, resamples=2000, seed=1)
    assert {k: row["interval"][k] for k in expected} == expected
    assert row["interval"]["difference"] == pytest.approx(-0.0875)
    table = markdown(groups, [row], "cer", "full_attention")
    assert "| arm=lact | 0, 1, 2 |" in table and "reference" in table and "2/2" in table


def test_no_reference_trial_means_no_comparison():
    assert compare_to_reference(group_trials([trial("lact", 0, [1, 2])]), "full_attention", "asr") == []
