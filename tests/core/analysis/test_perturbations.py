"""Reward perturbations δ and their evaluation on sampled completions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cliffjax.analysis import (
    PerturbedReward,
    answer_candidates,
    make_perturbation,
    perturbation_value,
)


def test_tie_perturbation_marks_one_optimum_per_prompt():
    rewards = jnp.asarray([[1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 0.0, 0.0]])
    pert = make_perturbation("ties", jax.random.key(0), rewards, ("correct",))
    table = np.asarray(pert.table)
    assert table.sum(1).tolist() == [1.0, 1.0]
    assert table[0, 1] == 0 and table[1, 1] == 1  # the bonus sits on a maximiser
    rnd = make_perturbation("random", jax.random.key(0), rewards, ("correct",))
    assert np.all(np.abs(np.asarray(rnd.table)) <= 1) and np.allclose(rnd.table[0], rnd.table[1])
    with pytest.raises(ValueError, match="one weight per reward component"):
        make_perturbation("reweight", jax.random.key(0), rewards, ("a", "b"), (1.0,))
    rw = make_perturbation("reweight", jax.random.key(0), rewards, ("a", "b"), (1.0, -1.0))
    comps = {"b": jnp.asarray([1.0, 0.0]), "a": jnp.asarray([1.0, 1.0])}
    d = perturbation_value(rw, jnp.asarray([0, 1]), jnp.asarray([-1, 2]), comps)
    np.testing.assert_allclose(np.asarray(d), [0.0, 1.0])  # sorted names: a - b
    with pytest.raises(ValueError, match="perturbation must be one of"):
        make_perturbation("bump", jax.random.key(0), rewards, ("correct",))


def test_perturbed_reward_reads_the_row_prompt_and_its_answer():
    digit0, eos, pad = 2, 1, 0
    cand, _ = answer_candidates(1, 3, digit0, eos, pad)  # "0".."9"
    table = jnp.arange(20, dtype=jnp.float32).reshape(2, 10)  # δ[prompt, answer]
    pert = make_perturbation("random", jax.random.key(0), jnp.zeros((2, 10)), ("correct",))
    pert = pert._replace(table=table)
    transform = PerturbedReward(1, digit0, eos)
    completions = jnp.concatenate([cand[3:4], cand[7:8], jnp.asarray([[5, 5, eos]])])
    meta = {"prompt_idx": jnp.asarray([0, 1, 1])}
    delta = transform.delta(pert, completions, meta, {"correct": jnp.zeros(3)})
    np.testing.assert_allclose(np.asarray(delta), [3.0, 17.0, 0.0])  # "55" is not an answer
