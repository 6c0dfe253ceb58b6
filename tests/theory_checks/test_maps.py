"""The exact reward->policy maps, and hypothesis properties of the bounds they are checked against."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cliffjax.theory_checks import maps
from cliffjax.theory_checks.cliff_checks import branch_perturbation, two_branch_mdp

SETTINGS = settings(max_examples=25, deadline=None)


def _value_iteration(mdp, R, n=3000):
    Q = np.zeros_like(R)
    for _ in range(n):
        Q = R + mdp.gamma * mdp.P @ Q.max(-1)
    return Q


def test_hard_q_matches_value_iteration():
    rng = np.random.default_rng(0)
    for gamma in (0.0, 0.5, 0.9):
        mdp = maps.random_mdp(rng, 4, 3, gamma)
        R = rng.normal(size=(4, 3))
        np.testing.assert_allclose(maps.hard_q(mdp, R), _value_iteration(mdp, R), atol=1e-12)


def test_hard_q_with_ties_and_inverse_bellman():
    rng = np.random.default_rng(1)
    mdp = maps.random_mdp(rng, 5, 4, 0.9)
    Q0 = rng.normal(size=(5, 4))
    Q0[:, :2] = Q0.max(-1, keepdims=True) + 1.0  # two tied actions everywhere
    np.testing.assert_allclose(maps.hard_q(mdp, maps.inverse_bellman(mdp, Q0)), Q0, atol=1e-12)


def test_soft_q_fixed_point_and_limits():
    rng = np.random.default_rng(2)
    mdp = maps.random_mdp(rng, 4, 3, 0.8)
    R = rng.normal(size=(4, 3))
    alpha = 0.3
    Q = maps.soft_q(mdp, R, alpha)
    resid = Q - (R + mdp.gamma * mdp.P @ (alpha * maps.logsumexp(Q / alpha)))
    assert np.max(np.abs(resid)) < 1e-12
    # alpha -> 0: soft Q -> hard Q*
    assert np.max(np.abs(maps.soft_q(mdp, R, 1e-4) - maps.hard_q(mdp, R))) < 1e-3
    # KL to a uniform reference = entropy regularization shifted by alpha*log K per step
    ref = np.full((4, 3), -np.log(3))
    Qkl = maps.soft_q(mdp, R, alpha, ref_logp=ref)
    np.testing.assert_allclose(maps.softmax(Qkl, alpha), maps.softmax(Q, alpha), atol=1e-12)


def test_soft_policy_maximises_regularized_value_in_bandit():
    rng = np.random.default_rng(3)
    r, alpha = rng.normal(size=5), 0.4
    p = maps.soft_policy(r, alpha)
    best = p @ r + alpha * maps.entropy(p)
    for _ in range(200):
        q = rng.dirichlet(np.ones(5))
        assert q @ r + alpha * maps.entropy(q) <= best + 1e-12
    np.testing.assert_allclose(best, alpha * maps.logsumexp(r / alpha), atol=1e-12)


def test_tie_rules():
    q = np.array([1.0, 3.0, 3.0, 0.0, 3.0])
    np.testing.assert_array_equal(maps.hard_policy(q, "first"), [0, 1, 0, 0, 0])
    np.testing.assert_allclose(maps.hard_policy(q, "uniform"), [0, 1 / 3, 1 / 3, 0, 1 / 3])
    with pytest.raises(ValueError, match="tie_rule"):
        maps.hard_policy(q, "random")
    # contextual bandit: row-wise
    Q = np.stack([q, -q])
    assert maps.hard_policy(Q, "uniform").shape == (2, 5)
    np.testing.assert_allclose(maps.hard_policy(Q, "uniform").sum(-1), 1.0)


def test_kl_policy_is_ref_times_exp():
    ref = np.log(np.array([0.1, 0.2, 0.7]))
    q, beta = np.array([0.5, -1.0, 0.2]), 0.7
    expected = np.exp(ref) * np.exp(q / beta)
    np.testing.assert_allclose(maps.kl_policy(q, beta, ref), expected / expected.sum(), atol=1e-15)


def test_token_tree_against_brute_force():
    rng = np.random.default_rng(4)
    tree = maps.make_token_tree(vocab=3, horizon=3)
    assert tree.num_states == 1 + 3 + 9
    R = rng.normal(size=(tree.num_states, 3))
    index = {p: i for i, p in enumerate(tree.prefixes)}

    def ret(seq):
        return sum(R[index[seq[:t]], seq[t]] for t in range(len(seq)))

    best = max(ret(s) for s in itertools.product(range(3), repeat=3))
    assert abs(maps.tree_hard_q(tree, R)[0].max() - best) < 1e-12
    # soft value at the root = alpha * log sum over all sequences exp(return / alpha)
    alpha = 0.5
    soft_root = alpha * maps.logsumexp(
        np.array([ret(s) for s in itertools.product(range(3), repeat=3)]) / alpha
    )
    assert (
        abs(alpha * maps.logsumexp(maps.tree_soft_q(tree, R, alpha)[0] / alpha) - soft_root) < 1e-12
    )
    # policy value of the greedy policy = optimal value; reach probabilities sum to 1 per depth
    pi = maps.hard_policy(maps.tree_hard_q(tree, R), "first")
    assert abs(maps.tree_policy_value(tree, R, pi)[0] - best) < 1e-12
    reach = maps.tree_state_probs(tree, pi)
    for dpt in range(3):
        assert abs(reach[tree.depth == dpt].sum() - 1) < 1e-12


def test_token_tree_with_eos():
    tree = maps.make_token_tree(vocab=3, horizon=3, eos=0)
    assert all(c == -1 for c in tree.children[:, 0])
    assert tree.num_states == 1 + 2 + 4  # EOS never opens a prefix


def test_validation_errors():
    with pytest.raises(ValueError, match="gamma"):
        maps.TabularMDP(np.ones((2, 2, 2)) / 2, 1.0)
    with pytest.raises(ValueError, match="P must"):
        maps.TabularMDP(np.ones((2, 2, 2)), 0.5)
    with pytest.raises(ValueError, match="alpha"):
        maps.soft_q(maps.TabularMDP(np.ones((2, 2, 2)) / 2, 0.5), np.zeros((2, 2)), 0.0)
    with pytest.raises(ValueError, match="vocab"):
        maps.make_token_tree(1, 3)


# --------------------------------------------------------------------------------------------
# hypothesis: the bounds over random reward vectors and gaps
# --------------------------------------------------------------------------------------------

finite = st.floats(-5, 5, allow_nan=False)


@SETTINGS
@given(
    x=st.lists(finite, min_size=2, max_size=6),
    seed=st.integers(0, 2**31 - 1),
    log_alpha=st.floats(-2, 1),
    log_scale=st.floats(-6, 0),
)
def test_softmax_lipschitz_property(x, seed, log_alpha, log_scale):
    x = np.array(x)
    d = np.random.default_rng(seed).uniform(-1, 1, x.shape) * 10.0**log_scale
    alpha = 10.0**log_alpha
    tv = maps.tv_distance(maps.softmax(x, alpha), maps.softmax(x + d, alpha))
    assert tv <= np.max(np.abs(d)) / (2 * alpha) * (1 + 1e-9) + 1e-15
    assert tv <= (d.max() - d.min()) / (4 * alpha) * (1 + 1e-9) + 1e-15


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), gamma=st.sampled_from([0.0, 0.5, 0.9]), shift=finite)
def test_q_lipschitz_and_constant_shift_property(seed, gamma, shift):
    rng = np.random.default_rng(seed)
    mdp = maps.random_mdp(rng, 3, 3, gamma)
    R = rng.normal(size=(3, 3))
    d = rng.uniform(-1, 1, (3, 3))
    Q = maps.hard_q(mdp, R)
    assert np.max(np.abs(maps.hard_q(mdp, R + d) - Q)) <= np.max(np.abs(d)) / (1 - gamma) * (
        1 + 1e-9
    )
    # a constant shift moves Q* by exactly shift/(1-gamma)
    np.testing.assert_allclose(maps.hard_q(mdp, R + shift) - Q, shift / (1 - gamma), atol=1e-9)


@SETTINGS
@given(gap=st.floats(0.01, 1.0), gamma=st.sampled_from([0.0, 0.5, 0.9]), frac=st.floats(0.0, 0.999))
def test_margin_radius_property(gap, gamma, frac):
    """Below (1-gamma)*gap/2 the argmax never flips; just above it does (adversarial direction)."""
    mdp = two_branch_mdp(gamma, num_first=1)
    R0 = np.zeros((3, 2))
    R0[0, 0] = gap
    radius = (1 - gamma) * gap / 2
    Q = maps.hard_q(mdp, R0 + branch_perturbation(frac * radius, 1, -1.0))
    assert np.argmax(Q[0]) == 0
    Q = maps.hard_q(mdp, R0 + branch_perturbation(radius * 1.001, 1, -1.0))
    assert np.argmax(Q[0]) == 1


@SETTINGS
@given(log_eps=st.floats(-6, -1), m=st.integers(2, 4), seed=st.integers(0, 1000))
def test_cliff_jump_property(log_eps, m, seed):
    """Uniform-over-ties: TV jump (m-1)/m for every eps; first-index: TV 1 (a2 = action 1)."""
    from cliffjax.theory_checks.cliff_checks import tied_mdp

    mdp, R0, Q0 = tied_mdp(np.random.default_rng(seed), m)
    phi = np.zeros_like(Q0)
    phi[0, 1] = 1.0
    Re = maps.inverse_bellman(mdp, Q0 + 10.0**log_eps * phi)
    Q, Qe = maps.hard_q(mdp, R0), maps.hard_q(mdp, Re)
    tv_u = maps.tv_distance(maps.hard_policy(Q, "uniform")[0], maps.hard_policy(Qe, "uniform")[0])
    tv_f = maps.tv_distance(maps.hard_policy(Q, "first")[0], maps.hard_policy(Qe, "first")[0])
    assert abs(tv_u - (m - 1) / m) < 1e-12 and abs(tv_f - 1) < 1e-12
    assert np.max(np.abs(Re - R0)) <= 10.0**log_eps * (1 + mdp.gamma) * (1 + 1e-9)
