"""Sampled-answer distances: canonical answers, empirical TV, length bins, bootstrap intervals
and the finite-n noise floor, against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from cliffjax.analysis.sampled_answers import (
    NONE,
    UNFINISHED,
    answer_bonus,
    bootstrap_ci,
    canonical_answer,
    empirical_distribution,
    empirical_tv,
    expected_null_tv,
    extracted_answers,
    l2sq_unbiased,
    length_bins,
    per_prompt_l2sq,
    per_prompt_tv,
)


def test_canonical_answer_merges_equal_numbers():
    assert canonical_answer("18") == canonical_answer("18.0") == canonical_answer("$18") == "18"
    assert canonical_answer("1,800") == canonical_answer("1800.") == "1800"
    assert canonical_answer("-3") == "-3" and canonical_answer("0.50") == "0.5"
    assert canonical_answer("-0") == "0"
    assert canonical_answer(None) == NONE and canonical_answer("  ") == NONE
    assert canonical_answer("  x   y. ") == "x y"


def test_extracted_answers_use_the_named_extractor():
    texts = ["3 + 4 = 7 #### 7", "no numbers here", "so 12 apples", "#### 1,200."]
    assert extracted_answers(texts, "gsm8k") == ["7", NONE, "12", "1200"]
    assert extracted_answers(texts, "gsm8k_strict") == ["7", NONE, NONE, "1200"]
    assert extracted_answers(["a \\boxed{5}", "b"], "boxed") == ["5", NONE]
    with pytest.raises(ValueError, match="answer extractor must be one of"):
        extracted_answers(texts, "regex")


def test_length_bins_hand_computed():
    lengths = np.array([0, 3, 4, 7, 8])
    finished = np.array([True, True, True, True, False])
    assert length_bins(lengths, finished, 8, 2) == ["len0", "len0", "len1", "len1", UNFINISHED]
    assert length_bins(np.array([8]), np.array([True]), 8, 4) == ["len3"]  # clipped to the top
    with pytest.raises(ValueError, match="n_bins"):
        length_bins(lengths, finished, 8, 0)


def test_empirical_tv_hand_computed():
    assert empirical_tv(["a", "a", "b", "b"], ["a", "b", "b", "b"]) == pytest.approx(0.25)
    assert empirical_tv(["a", "a"], ["b"]) == 1.0
    assert empirical_tv(["a", "b", "a"], ["b", "a", "a"]) == 0.0
    assert empirical_tv(["a"], ["a", "b"]) == pytest.approx(0.5)  # sizes may differ
    np.testing.assert_allclose(
        per_prompt_tv([["a", "a"], ["x", "y"]], [["a", "b"], ["z", "z"]]), [0.5, 1.0]
    )
    np.testing.assert_allclose(
        empirical_distribution(["b", "a", "b"], ["a", "b", "c"]), [1 / 3, 2 / 3, 0]
    )
    with pytest.raises(ValueError, match="outside the support"):
        empirical_distribution(["d"], ["a"])


def test_bootstrap_ci_hand_computed():
    # Constant values: no spread.
    assert bootstrap_ci(np.full(7, 0.3)) == pytest.approx((0.3, 0.3, 0.3))
    assert bootstrap_ci(np.array([0.4])) == (0.4, 0.4, 0.4)
    # Two prompts 0 and 1: resampled means are 0, 0.5, 1 w.p. 1/4, 1/2, 1/4, so the 95%
    # percentile interval is [0, 1].
    mean, lo, hi = bootstrap_ci(np.array([0.0, 1.0]), n_boot=4000)
    assert (mean, lo, hi) == (0.5, 0.0, 1.0)
    # Deterministic in its seed; the interval shrinks like 1/sqrt(E) and covers the mean.
    x = np.random.default_rng(1).normal(0.2, 0.1, 400)
    assert bootstrap_ci(x, seed=3) == bootstrap_ci(x, seed=3)
    m, lo, hi = bootstrap_ci(x)
    assert lo < m < hi and lo < 0.2 < hi
    se = x.std() / np.sqrt(x.size)
    assert (hi - lo) == pytest.approx(2 * 1.96 * se, rel=0.2)
    with pytest.raises(ValueError, match="finite"):
        bootstrap_ci(np.array([0.1, np.nan]))


def test_expected_null_tv_and_the_empirical_floor():
    assert expected_null_tv(np.array([1.0]), 5) == 0.0
    assert expected_null_tv(np.array([0.5, 0.5]), 1) == pytest.approx(0.5)
    # n = 2: E|X - Y| / 2 for X, Y ~ Bin(2, 1/2) is 0.75 / 2.
    assert expected_null_tv(np.array([0.5, 0.5]), 2) == pytest.approx(0.375)
    # Two independent sample sets of one policy: the empirical TV averages to the exact floor,
    # which is far above the true distance 0 at small n.
    p, n = np.array([0.6, 0.3, 0.1]), 8
    rng = np.random.default_rng(0)
    labels = np.array(["a", "b", "c"])
    draws = [
        empirical_tv(list(rng.choice(labels, n, p=p)), list(rng.choice(labels, n, p=p)))
        for _ in range(4000)
    ]
    exact = expected_null_tv(p, n)
    assert exact > 0.15
    assert np.mean(draws) == pytest.approx(exact, abs=0.01)


def test_answer_bonus_is_a_fixed_function_of_the_answer():
    b = answer_bonus("18", 0)
    assert -1.0 <= b < 1.0 and b == answer_bonus("18", 0)
    assert answer_bonus("18", 1) != b and answer_bonus("19", 0) != b
    assert answer_bonus(NONE, 0) == 0.0
    vals = np.array([answer_bonus(str(i), 7) for i in range(2000)])
    assert abs(vals.mean()) < 0.05 and vals.min() < -0.95 and vals.max() > 0.95


def test_l2sq_unbiased_hand_computed_and_unbiased():
    # a: counts (x: 2, y: 2), n = 4; b: (x: 1, y: 3), m = 4.
    # Σc(c−1)/12 = 4/12, Σd(d−1)/12 = 6/12, Σcd/16 = (2 + 6)/16.
    a, b = ["x", "x", "y", "y"], ["x", "y", "y", "y"]
    assert l2sq_unbiased(a, b) == pytest.approx(4 / 12 + 6 / 12 - 2 * 8 / 16)
    assert l2sq_unbiased(["x", "x"], ["y", "y"]) == pytest.approx(2.0)  # disjoint point masses
    np.testing.assert_allclose(
        per_prompt_l2sq([a, a], [b, a]), [l2sq_unbiased(a, b), l2sq_unbiased(a, a)]
    )
    with pytest.raises(ValueError, match=">= 2 samples"):
        l2sq_unbiased(["x"], ["x", "y"])
    # Monte Carlo: mean 0 under p = q (where the empirical TV is far from 0), ‖p − q‖² else.
    rng = np.random.default_rng(1)
    labels = np.array(["a", "b", "c"])
    p, q, n = np.array([0.6, 0.3, 0.1]), np.array([0.3, 0.3, 0.4]), 6

    def draws(p1, p2):
        return np.mean(
            [
                l2sq_unbiased(list(rng.choice(labels, n, p=p1)), list(rng.choice(labels, n, p=p2)))
                for _ in range(6000)
            ]
        )

    assert draws(p, p) == pytest.approx(0.0, abs=0.01)
    assert draws(p, q) == pytest.approx(float(np.sum((p - q) ** 2)), abs=0.01)
