"""Group advantages: tunix/TRL golden values, ddof test vector, zero-variance reporting."""

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cliffjax.objectives import AdvantageConfig, compute_advantages

TUNIX = {"grpo": "group_std", "drgrpo": "group_mean", "rloo": "rloo"}


@pytest.mark.parametrize("rewards", ["rewards_binary", "rewards_cont"])
@pytest.mark.parametrize("tunix_name", sorted(TUNIX))
def test_matches_tunix(tunix_name, rewards, tunix, golden_inputs, h, x64):
    """tunix: (r − mean)/(std_ddof1 + 1e-6) = our defaults; drgrpo = group_mean; rloo."""
    r = jnp.asarray(golden_inputs[rewards], jnp.float64)
    adv, _ = compute_advantages(r, golden_inputs["G"], AdvantageConfig(TUNIX[tunix_name]))
    ref = tunix["advantages"][f"{tunix_name}/{rewards}"]["value"]
    assert h.max_abs(adv, ref) < 1e-12


def test_std_matches_trl_nanstd(trl, golden_inputs, x64):
    """TRL's group std (``nanstd``) is the Bessel-corrected std, our ddof=1."""
    for rewards in ("rewards_binary", "rewards_cont"):
        r = np.asarray(golden_inputs[rewards]).reshape(-1, golden_inputs["G"])
        ref = trl["utils"][f"nanstd/{rewards}/group"]["value"]
        np.testing.assert_allclose(r.std(axis=1, ddof=1), ref, rtol=1e-7)
        # and our advantages with TRL's eps use exactly that std:
        adv, _ = compute_advantages(
            jnp.asarray(r.reshape(-1)), golden_inputs["G"], AdvantageConfig(eps=1e-4)
        )
        centred = r - r.mean(axis=1, keepdims=True)
        expect = np.where(np.ptp(r, axis=1, keepdims=True) == 0, 0.0, centred) / (
            np.asarray(ref)[:, None] + 1e-4
        )
        np.testing.assert_allclose(np.asarray(adv), expect.reshape(-1), rtol=1e-6, atol=1e-12)


def test_ddof_test_vector(x64):
    r = jnp.array([1.0, 0.0, 0.0, 1.0])
    a1, _ = compute_advantages(r, 4, AdvantageConfig(ddof=1, eps=0.0))
    a0, _ = compute_advantages(r, 4, AdvantageConfig(ddof=0, eps=0.0))
    np.testing.assert_allclose(np.asarray(a1), [0.8660254, -0.8660254, -0.8660254, 0.8660254])
    np.testing.assert_allclose(np.asarray(a0), [1.0, -1.0, -1.0, 1.0])


def test_rloo_and_mean_by_hand(x64):
    r = jnp.array([1.0, 0.0, 0.0, 0.0])
    a, _ = compute_advantages(r, 4, AdvantageConfig("rloo"))
    np.testing.assert_allclose(np.asarray(a), [1.0, -1 / 3, -1 / 3, -1 / 3])
    a, _ = compute_advantages(r, 4, AdvantageConfig("group_mean"))
    np.testing.assert_allclose(np.asarray(a), [0.75, -0.25, -0.25, -0.25])


@pytest.mark.parametrize("est", ["group_std", "group_mean", "rloo"])
def test_zero_variance_groups_are_reported_and_zero(est):
    r = jnp.array([0.3, 0.3, 0.3, 0.3, 1.0, 0.0, 1.0, 0.0], jnp.float32)
    adv, aux = compute_advantages(r, 4, AdvantageConfig(est))
    assert float(aux["zero_variance_frac"]) == 0.5
    assert aux["zero_variance_mask"].tolist() == [True] * 4 + [False] * 4
    assert np.all(np.asarray(adv[:4]) == 0.0)
    assert np.all(np.isfinite(np.asarray(adv)))


@pytest.mark.parametrize(
    ("kw", "field"), [({"estimator": "gae"}, "estimator"), ({"ddof": 2}, "ddof")]
)
def test_bad_config(kw, field):
    with pytest.raises(ValueError, match=field):
        AdvantageConfig(**kw)


def test_group_size_must_divide():
    with pytest.raises(ValueError, match="group_size"):
        compute_advantages(jnp.zeros(6), 4)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    shift=st.floats(-100, 100),
    scale=st.floats(0.1, 10),
    est=st.sampled_from(["group_std", "group_mean", "rloo"]),
)
def test_shift_and_scale_invariance(seed, shift, scale, est):
    """Shift-invariant for all; scale-invariant where std-normalised (eps = 0), else equivariant."""
    with __import__("jax").enable_x64(True):
        r = np.random.default_rng(seed).normal(size=8)
        cfg = AdvantageConfig(est, eps=0.0)
        a, _ = compute_advantages(jnp.asarray(r), 4, cfg)
        b, _ = compute_advantages(jnp.asarray(scale * r + shift), 4, cfg)
        factor = 1.0 if est == "group_std" else scale
        np.testing.assert_allclose(np.asarray(b), factor * np.asarray(a), rtol=1e-7, atol=1e-7)
        assert abs(float(jnp.sum(a))) < 1e-9  # each group's advantages sum to 0
