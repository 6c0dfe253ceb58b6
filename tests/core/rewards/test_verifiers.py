"""Verifiers and their composition: built-ins, user functions, and failures that stop a run
with the verifier and the completion named."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from cliffjax.rewards import RewardComponent, TextReward, VerifierError, get_verifier


def test_builtin_verifiers():
    gsm = get_verifier("gsm8k")
    assert gsm("so #### 8", "3 + 5 = 8\n#### 8", True) == 1.0  # full solution as reference
    assert gsm("the answer is 8", "8", True) == 1.0  # lenient: last number
    assert get_verifier("gsm8k_strict")("the answer is 8", "8", True) == 0.0
    assert get_verifier("gsm8k_format")("#### 8", "9", True) == 1.0
    assert get_verifier("boxed")(r"thus \boxed{0.50}", r"\boxed{0.5}", True) == 1.0
    assert get_verifier("boxed")(r"thus \boxed{2}", "3", True) == 0.0
    assert get_verifier("boxed_format")(r"\boxed{", "3", True) == 0.0
    assert get_verifier("finished")("x", "y", False) == 0.0
    assert get_verifier("finished")("x", "y", True) == 1.0


def test_math_verify_symbolic_equivalence():
    pytest.importorskip("math_verify")
    mv = get_verifier("math_verify")
    assert mv(r"so the answer is $\boxed{\frac{1}{2}}$", "0.5", True) == 1.0
    assert mv(r"$\boxed{\sqrt{4}}$", "2", True) == 1.0
    assert mv(r"$\boxed{3}$", "2", True) == 0.0


def test_text_reward_components_and_total():
    reward = TextReward(
        (RewardComponent("correct", "gsm8k"), RewardComponent("format", "gsm8k_format", 0.25))
    )
    v = reward(["#### 8", "it is 8", "#### 7"], [True, True, False], ["8", "8", "8"])
    np.testing.assert_array_equal(v["correct"], [1, 1, 0])
    np.testing.assert_array_equal(v["format"], [1, 0, 1])
    np.testing.assert_allclose(reward.total(v), [1.25, 1.0, 0.25])
    assert reward.names == ("correct", "format") and reward.weights == (1.0, 0.25)


def _user_len(text: str, reference: str) -> float:
    return float(len(text))


def _raises(text: str, reference: str) -> float:
    raise KeyError("boom")


def _nan(text: str, reference: str) -> float:
    return math.nan


def _slow(text: str, reference: str) -> float:
    time.sleep(5)
    return 1.0


def test_user_function_by_import_path():
    reward = TextReward([RewardComponent("correct", f"{__name__}:_user_len")])
    np.testing.assert_array_equal(reward(["ab", "abc"], [True, True], ["", ""])["correct"], [2, 3])


@pytest.mark.parametrize(
    "fn,message",
    [("_raises", "raised KeyError"), ("_nan", "returned nan"), ("_slow", "did not return within")],
)
def test_failures_name_verifier_component_and_completion(fn, message):
    reward = TextReward([RewardComponent("correct", f"{__name__}:{fn}")], timeout_s=0.2)
    with pytest.raises(VerifierError, match=message) as err:
        reward(["fine", "the bad one"], [True, True], ["1", "1"])
    assert f"{__name__}:{fn}" in str(err.value) and "'correct'" in str(err.value)
    assert "'fine'" in str(err.value)  # the first completion it failed on


def test_bad_components_fail_at_construction():
    with pytest.raises(ValueError, match="unknown verifier 'gsm9k'"):
        RewardComponent("correct", "gsm9k")
    with pytest.raises(ValueError, match="weight of 'format' must be a finite number"):
        RewardComponent("format", "gsm8k_format", math.inf)
    with pytest.raises(ValueError, match="names repeat"):
        TextReward([RewardComponent("a", "gsm8k"), RewardComponent("a", "boxed")])
