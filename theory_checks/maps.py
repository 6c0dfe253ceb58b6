"""Exact reward -> policy maps for small finite problems.

Everything here is plain float64 numpy: the checks measure constants to ~1e-12, which float32
cannot resolve, and the problems are tiny (K <= 64 actions, a few hundred states at most).

Problems covered
----------------
* K-armed bandit: a reward vector ``r[K]``; the policy maps act on the last axis.
* Contextual bandit: a reward table ``R[S, K]`` (one row per context); the same maps act
  row-wise, so every bandit function below accepts ``[..., K]``.
* Discounted MDP (:class:`TabularMDP`): transition tensor ``P[S, K, S]``, discount ``gamma``.
  Hard ``Q*`` by exact policy iteration (linear solves), soft/KL ``Q`` by soft value iteration.
* Token tree (:class:`TokenTree`): the shape of LLM generation. A state is a prefix of at
  most ``horizon - 1`` tokens from a vocabulary of size ``vocab``; appending a token moves to
  the child prefix, an optional EOS token or reaching the horizon ends the episode.
  Solved exactly by backward induction (undiscounted by default, as in RL for LLMs).

Policy maps (Policy Cliff, arXiv 2507.20150, Sec. 2.1 and Sec. 4.4)
--------------------------------------------------------------------
* Unregularized: any policy supported on ``A*(s) = argmax_a Q*(s, a)``. Two explicit tie rules:
  ``"first"`` (deterministic: the lowest-index maximiser, the selection of Prop. 2.9) and
  ``"uniform"`` (uniform over the maximisers, the selection of Prop. 2.10). Ties are decided
  with an absolute tolerance ``TIE_ATOL`` because ``Q*`` computed by a linear solve carries
  rounding of ~1e-14; the checks perturb by at least 1e-6, far above the tolerance.
* Entropy-regularized: ``pi(a|s) = softmax(Q*_alpha(s, .)/alpha)(a)`` with the soft Bellman
  operator ``(T Q)(s,a) = R(s,a) + gamma E_{s'} alpha logsumexp(Q(s', .)/alpha)``
  (paper Sec. 4.4, the equation after the entropy-regularized objective).
* KL-regularized to a reference: ``pi(a|s) ∝ pi_ref(a|s) exp(Q*_beta(s,a)/beta)`` with
  ``(T Q)(s,a) = R(s,a) + gamma E_{s'} beta log sum_a' pi_ref(a'|s') exp(Q(s',a')/beta)``.
  (Standard; the paper discusses KL as a tie-breaker in Sec. 3.4 without this formula.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

TIE_ATOL = 1e-10
"""Absolute tolerance used to decide that two Q-values are tied."""

TIE_RULES = ("first", "uniform")


# ---------------------------------------------------------------------------------------------
# Distributions
# ---------------------------------------------------------------------------------------------


def tv_distance(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Total variation ``0.5 * sum_a |p(a) - q(a)|`` over the last axis. Shapes ``[..., K]``."""
    return 0.5 * np.abs(np.asarray(p) - np.asarray(q)).sum(axis=-1)


def entropy(p: np.ndarray) -> np.ndarray:
    """Shannon entropy ``-sum p log p`` (nats) over the last axis, with ``0 log 0 = 0``."""
    p = np.asarray(p, dtype=np.float64)
    logp = np.log(np.where(p > 0, p, 1.0))
    return -(p * logp).sum(axis=-1)


def logsumexp(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Stable ``log sum exp`` along ``axis`` (max-shifted)."""
    m = np.max(x, axis=axis, keepdims=True)
    return np.squeeze(m, axis=axis) + np.log(np.exp(x - m).sum(axis=axis))


def softmax(x: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """``softmax(x / temperature)`` over the last axis (max-shifted for stability)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    z = np.asarray(x, dtype=np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


# ---------------------------------------------------------------------------------------------
# Bandit / contextual-bandit policy maps (act on the last axis)
# ---------------------------------------------------------------------------------------------


def argmax_set(q: np.ndarray, atol: float = TIE_ATOL) -> np.ndarray:
    """Boolean mask of the optimal set ``A* = {a : q(a) >= max q - atol}``; shape of ``q``."""
    q = np.asarray(q, dtype=np.float64)
    return q >= q.max(axis=-1, keepdims=True) - atol


def hard_policy(q: np.ndarray, tie_rule: str = "uniform", atol: float = TIE_ATOL) -> np.ndarray:
    """Unregularized optimal policy from action values ``q[..., K]``.

    ``tie_rule="first"``: probability 1 on the lowest-index maximiser (deterministic
    selection, Prop. 2.9 of arXiv 2507.20150). ``tie_rule="uniform"``: uniform over the
    maximisers (Prop. 2.10).
    """
    if tie_rule not in TIE_RULES:
        raise ValueError(f"tie_rule must be one of {TIE_RULES}, got {tie_rule!r}")
    mask = argmax_set(q, atol)
    if tie_rule == "uniform":
        return mask / mask.sum(axis=-1, keepdims=True)
    first = np.argmax(mask, axis=-1)  # argmax of a boolean returns the first True
    return np.eye(mask.shape[-1])[first]


def soft_policy(q: np.ndarray, alpha: float) -> np.ndarray:
    """Entropy-regularized policy ``softmax(q / alpha)`` over the last axis."""
    return softmax(q, alpha)


def kl_policy(q: np.ndarray, beta: float, ref_logp: np.ndarray) -> np.ndarray:
    """KL-regularized policy ``pi_ref * exp(q / beta)`` normalised over the last axis."""
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    return softmax(np.asarray(ref_logp) * beta + np.asarray(q), beta)


# ---------------------------------------------------------------------------------------------
# Discounted tabular MDP
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TabularMDP:
    """Finite discounted MDP without the reward (rewards are the variable of the maps).

    Attributes:
      P: ``[S, K, S]`` transition probabilities; each ``P[s, a]`` sums to 1.
      gamma: discount in ``[0, 1)`` (Assumption 2.3 of arXiv 2507.20150).
    """

    P: np.ndarray
    gamma: float

    def __post_init__(self) -> None:
        P = np.asarray(self.P, dtype=np.float64)
        if P.ndim != 3 or P.shape[0] != P.shape[2]:
            raise ValueError(f"P must have shape [S, K, S], got {P.shape}")
        if np.any(P < 0) or not np.allclose(P.sum(-1), 1.0, atol=1e-12):
            raise ValueError("P must be non-negative with rows summing to 1")
        if not 0.0 <= self.gamma < 1.0:
            raise ValueError(f"gamma must be in [0, 1), got {self.gamma}")
        object.__setattr__(self, "P", P)

    @property
    def num_states(self) -> int:
        return self.P.shape[0]

    @property
    def num_actions(self) -> int:
        return self.P.shape[1]


def random_mdp(rng: np.random.Generator, num_states: int, num_actions: int, gamma: float):
    """MDP with ``P[s, a, :] ~ Dirichlet(1)``."""
    P = rng.dirichlet(np.ones(num_states), size=(num_states, num_actions))
    return TabularMDP(P, gamma)


def deterministic_mdp(next_state: np.ndarray, gamma: float) -> TabularMDP:
    """MDP whose transitions are ``s -> next_state[s, a]`` with probability 1."""
    next_state = np.asarray(next_state)
    S, K = next_state.shape
    P = np.zeros((S, K, S))
    P[np.arange(S)[:, None], np.arange(K)[None, :], next_state] = 1.0
    return TabularMDP(P, gamma)


def policy_state_values(mdp: TabularMDP, R: np.ndarray, pi: np.ndarray) -> np.ndarray:
    """``V^pi[S]`` for reward ``R[S, K]`` and policy ``pi[S, K]``: solves ``(I - gamma P_pi) V = r_pi``."""
    r_pi = (pi * R).sum(-1)
    P_pi = np.einsum("sa,sat->st", pi, mdp.P)
    return np.linalg.solve(np.eye(mdp.num_states) - mdp.gamma * P_pi, r_pi)


def policy_q(mdp: TabularMDP, R: np.ndarray, pi: np.ndarray) -> np.ndarray:
    """``Q^pi[S, K] = R + gamma P V^pi`` (exact linear solve)."""
    return R + mdp.gamma * mdp.P @ policy_state_values(mdp, R, pi)


def hard_q(mdp: TabularMDP, R: np.ndarray, max_iter: int = 1000) -> np.ndarray:
    """Optimal ``Q*_R[S, K]``, fixed point of ``T_R Q = R + gamma P max_a' Q`` (Eq. 1, 2507.20150).

    Exact policy iteration: evaluate the greedy policy by a linear solve, improve, stop when
    the greedy policy is stable (finite for a finite MDP). Rounding error is ~1e-14.
    """
    R = np.asarray(R, dtype=np.float64)
    S, K = R.shape
    greedy = np.argmax(R, axis=-1)
    for _ in range(max_iter):
        pi = np.eye(K)[greedy]
        Q = policy_q(mdp, R, pi)
        # keep the current action unless another is better by more than rounding noise,
        # otherwise ties make policy iteration cycle
        best = np.argmax(Q, axis=-1)
        current = Q[np.arange(S), greedy]
        improve = Q[np.arange(S), best] > current + 1e-13 * (1.0 + np.abs(current))
        if not improve.any():
            # one exact Bellman backup removes any residual from the linear solve
            return R + mdp.gamma * mdp.P @ Q.max(-1)
        greedy = np.where(improve, best, greedy)
    raise RuntimeError("policy iteration did not converge")


def inverse_bellman(mdp: TabularMDP, Q: np.ndarray) -> np.ndarray:
    """Reward whose optimal Q-function is ``Q``: ``R_Q = Q - gamma P max_a' Q`` (proof of Prop. 2.9)."""
    return Q - mdp.gamma * mdp.P @ np.asarray(Q).max(-1)


def soft_q(
    mdp: TabularMDP,
    R: np.ndarray,
    alpha: float,
    ref_logp: np.ndarray | None = None,
    tol: float = 1e-15,
    max_iter: int = 20000,
) -> np.ndarray:
    """Soft optimal ``Q*_{R,alpha}[S, K]`` by soft value iteration (a gamma-contraction).

    Entropy: ``V(s) = alpha logsumexp(Q(s,.)/alpha)``. KL to ``pi_ref`` (``ref_logp[S, K]``):
    ``V(s) = alpha log sum_a pi_ref(a|s) exp(Q(s,a)/alpha)``. Iterates until the sup-norm change
    is below ``tol * (1 + ||Q||)``, i.e. to float64 precision.
    """
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    R = np.asarray(R, dtype=np.float64)
    shift = 0.0 if ref_logp is None else np.asarray(ref_logp)
    Q = R.copy()
    for _ in range(max_iter):
        V = alpha * logsumexp(Q / alpha + shift, axis=-1)
        Q_new = R + mdp.gamma * mdp.P @ V
        if np.max(np.abs(Q_new - Q)) <= tol * (1.0 + np.max(np.abs(Q_new))):
            return Q_new
        Q = Q_new
    raise RuntimeError("soft value iteration did not converge")


def soft_optimal_policy(mdp: TabularMDP, R: np.ndarray, alpha: float) -> np.ndarray:
    """``pi_{R,alpha}(.|s) = softmax(Q*_{R,alpha}(s,.)/alpha)`` for every state; ``[S, K]``."""
    return softmax(soft_q(mdp, R, alpha), alpha)


# ---------------------------------------------------------------------------------------------
# Token trees (finite-horizon generation)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenTree:
    """All prefixes of a length-``horizon`` generation over ``vocab`` tokens.

    Attributes:
      vocab: vocabulary size V (number of actions per state).
      horizon: maximum number of generated tokens H.
      eos: token id that ends the episode, or ``None`` (episodes then last exactly H tokens).
      prefixes: state ``i`` is the prefix ``prefixes[i]`` (breadth-first order, root first).
      children: ``[S, V]`` index of the next state, ``-1`` when the action ends the episode.
      depth: ``[S]`` prefix length.
    """

    vocab: int
    horizon: int
    eos: int | None = None
    prefixes: tuple = field(default=(), repr=False)
    children: np.ndarray = field(default=None, repr=False)
    depth: np.ndarray = field(default=None, repr=False)

    @property
    def num_states(self) -> int:
        return len(self.prefixes)


def make_token_tree(vocab: int, horizon: int, eos: int | None = None) -> TokenTree:
    """Build the prefix tree (breadth first, so reversed order is a valid backward induction)."""
    if vocab < 2:
        raise ValueError(f"vocab must be >= 2, got {vocab}")
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    if eos is not None and not 0 <= eos < vocab:
        raise ValueError(f"eos must be None or in [0, {vocab}), got {eos}")
    prefixes: list[tuple[int, ...]] = [()]
    index = {(): 0}
    children_rows: list[list[int]] = []
    i = 0
    while i < len(prefixes):
        p = prefixes[i]
        row = []
        for a in range(vocab):
            if len(p) + 1 >= horizon or a == eos:
                row.append(-1)
            else:
                child = (*p, a)
                index[child] = len(prefixes)
                prefixes.append(child)
                row.append(index[child])
        children_rows.append(row)
        i += 1
    depth = np.array([len(p) for p in prefixes])
    return TokenTree(vocab, horizon, eos, tuple(prefixes), np.array(children_rows), depth)


def _tree_backup(tree: TokenTree, R: np.ndarray, gamma: float, value_fn) -> np.ndarray:
    R = np.asarray(R, dtype=np.float64)
    Q = np.zeros_like(R)
    V = np.zeros(tree.num_states)
    for s in range(tree.num_states - 1, -1, -1):
        ch = tree.children[s]
        cont = np.where(ch >= 0, V[np.maximum(ch, 0)], 0.0)
        Q[s] = R[s] + gamma * cont
        V[s] = value_fn(Q[s], s)
    return Q


def tree_hard_q(tree: TokenTree, R: np.ndarray, gamma: float = 1.0) -> np.ndarray:
    """Optimal ``Q*[S, V]`` on a token tree by backward induction (exact)."""
    return _tree_backup(tree, R, gamma, lambda q, s: q.max())


def tree_soft_q(
    tree: TokenTree,
    R: np.ndarray,
    alpha: float,
    gamma: float = 1.0,
    ref_logp: np.ndarray | None = None,
) -> np.ndarray:
    """Soft (entropy, or KL to ``ref_logp[S, V]``) optimal ``Q[S, V]`` by backward induction."""
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")

    def value(q, s):
        shift = 0.0 if ref_logp is None else ref_logp[s]
        return alpha * logsumexp(q / alpha + shift)

    return _tree_backup(tree, R, gamma, value)


def tree_state_probs(tree: TokenTree, pi: np.ndarray) -> np.ndarray:
    """Probability ``[S]`` that the generation passes through each prefix under ``pi[S, V]``."""
    reach = np.zeros(tree.num_states)
    reach[0] = 1.0
    for s in range(tree.num_states):
        for a, c in enumerate(tree.children[s]):
            if c >= 0:
                reach[c] += reach[s] * pi[s, a]
    return reach


def tree_policy_value(tree: TokenTree, R: np.ndarray, pi: np.ndarray, gamma: float = 1.0):
    """``V^pi[S]`` on a token tree: expected (discounted) return from each prefix under ``pi``."""
    V = np.zeros(tree.num_states)
    for s in range(tree.num_states - 1, -1, -1):
        ch = tree.children[s]
        cont = np.where(ch >= 0, V[np.maximum(ch, 0)], 0.0)
        V[s] = pi[s] @ (R[s] + gamma * cont)
    return V
