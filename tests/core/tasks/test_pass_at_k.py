"""pass@k: the unbiased estimator against enumeration, and sampled evaluation against a direct
computation from the same samples."""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cliffjax.models import make_policy, preset_config
from cliffjax.sampling import sample
from cliffjax.tasks import TOKENIZER, get_task
from cliffjax.tasks.base import sampling_config
from cliffjax.tasks.evaluate import evaluate_sampled, pass_at_k


@pytest.mark.parametrize(
    "n,c,k", [(5, 0, 1), (5, 2, 1), (5, 2, 2), (6, 3, 4), (4, 4, 4), (7, 1, 7)]
)
def test_pass_at_k_is_the_fraction_of_k_subsets_with_a_correct_sample(n, c, k):
    outcomes = [1] * c + [0] * (n - c)
    subsets = list(itertools.combinations(outcomes, k))
    expected = sum(any(s) for s in subsets) / len(subsets)
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)
    assert pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k))


def test_pass_at_k_vectorised_and_checked():
    np.testing.assert_allclose(pass_at_k(10, np.array([0, 5, 10]), 1), [0.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="1 <= k <= n"):
        pass_at_k(3, 1, 4)
    with pytest.raises(ValueError, match="0 <= c <= n"):
        pass_at_k(3, 4, 1)


def test_evaluate_sampled_matches_the_samples_it_draws():
    task = get_task("multi_reward", n_eval=12)
    model_cfg = preset_config("tiny", TOKENIZER.vocab_size, n_layers=1)
    graphdef, params = make_policy(model_cfg, jax.random.key(0))
    key = jax.random.key(3)
    res = evaluate_sampled(graphdef, params, task, key, n_samples=4, ks=(1, 2, 4), batch_size=12)
    prompts, meta = task.eval_set()
    cfg = sampling_config(task, temperature=1.0, group_size=4)
    out = sample(graphdef, params, prompts, jax.random.fold_in(key, 0), cfg)
    rep = jax.tree.map(lambda x: jnp.repeat(x, 4, 0), meta)
    reward, comps = task.reward(out.completion, out.completion_mask, rep)
    correct = np.asarray(comps["correct"]).reshape(12, 4)
    assert res["mean@n"] == pytest.approx(correct.mean())
    assert res["reward_mean@n"] == pytest.approx(float(reward.mean()), rel=1e-6)
    c = (correct > 0.5).sum(1)
    for k in (1, 2, 4):
        assert res[f"pass@{k}"] == pytest.approx(pass_at_k(4, c, k).mean())
    assert res["pass@1"] == pytest.approx(res["mean@n"])  # unbiased pass@1 = c/n
    assert res["pass@1"] <= res["pass@2"] <= res["pass@4"]
    assert "format_pass@2" in res and "format_mean@n" in res
    assert res["format_mean@n"] > 0  # the comparison is not vacuous
