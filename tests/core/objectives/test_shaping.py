"""DAPO soft overlong punishment: paper test vectors, TRL golden, tunix convention."""

import jax.numpy as jnp
import numpy as np
import pytest

from cliffjax.objectives import soft_overlong_penalty


def test_paper_test_vectors():
    out = soft_overlong_penalty(jnp.array([16384, 18432, 20480, 20481]), 20480, 4096)
    np.testing.assert_allclose(np.asarray(out), [0.0, -0.5, -1.0, -1.0])


def test_matches_trl(trl, golden_inputs, h):
    o = golden_inputs["overlong"]
    out = soft_overlong_penalty(
        jnp.asarray(o["completion_lengths"]), o["max_completion_len"], o["soft_punish_cache"]
    )
    assert h.max_abs(out, trl["rewards"]["soft_overlong_punishment"]["value"]) < 1e-6


def test_tunix_differs_only_beyond_max_len(tunix, golden_inputs):
    """tunix has no −1 floor: equal up to L_max, more negative beyond it."""
    o = golden_inputs["overlong"]
    lengths = np.asarray(o["completion_lengths"])
    ours = np.asarray(soft_overlong_penalty(jnp.asarray(lengths), 20, 5))
    theirs = np.asarray(tunix["misc"]["dapo_reward_shaping"]["value"])
    inside = lengths <= 20
    np.testing.assert_allclose(ours[inside], theirs[inside], atol=1e-6)
    assert np.all(theirs[~inside] < ours[~inside])


def test_bad_cache_len():
    with pytest.raises(ValueError, match="cache_len"):
        soft_overlong_penalty(jnp.array([1]), 10, 11)
