"""Distances between policies on a coarsening of their text: the extracted final answer.

With a real vocabulary the completions of a prompt cannot be enumerated, so two policies are
compared through a *statistic* ``φ(y)`` of each completion: the final answer the task's
extractor reads from it (``cliffjax.rewards.extract``; an unparsable completion is the one
lumped outcome :data:`NONE`), or a length bin (:func:`length_bins`). From ``n`` completions per
prompt of each policy the empirical distributions of ``φ`` are

    p̂(a | x) = #{i : φ(y_i) = a} / n,        y_1..y_n ~ π(·|x),

and their distance is ``TV(p̂, q̂) = ½ Σ_a |p̂(a|x) − q̂(a|x)|`` over the union of outcomes seen.

What it can show (docs/sweeps.md, "Sampled-answer distances"):

* ``TV(π_φ, π'_φ) ≤ TV(π, π')`` for any statistic ``φ`` (data processing): a move on the
  answers is a lower bound of the sequence-level move; equal answer distributions say nothing
  about the reasoning traces.
* ``E TV(p̂, q̂) ≥ TV(p, q)`` (the empirical TV is biased *upward* by finite ``n``: two sample
  sets of one policy are at distance > 0). The noise floor — the same statistic between two
  independent sample sets of one policy — is the value a distance must clear to be a move.

Everything here is pure numpy / Python on host values (sampled and decoded text), with no JAX.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from functools import partial
from typing import Final

import numpy as np

from cliffjax.rewards.extract import extract_boxed, extract_gsm8k, last_number, parse_number

#: The lumped outcome of a completion whose final answer cannot be extracted.
NONE: Final = "none"
#: The length-bin outcome of a completion that did not end (no EOS within the budget).
UNFINISHED: Final = "unfinished"

#: Answer extractors by name: ``fn(text) -> answer string or None``.
EXTRACTORS: Final[dict[str, Callable[[str], str | None]]] = {
    "gsm8k": extract_gsm8k,
    "gsm8k_strict": partial(extract_gsm8k, strict=True),
    "boxed": extract_boxed,
    "last_number": last_number,
}
#: The extractor that reads the answer a verifier scores (``sweep.answer_extractor=auto``).
VERIFIER_EXTRACTORS: Final[dict[str, str]] = {
    "gsm8k": "gsm8k",
    "gsm8k_strict": "gsm8k_strict",
    "gsm8k_format": "gsm8k_strict",
    "boxed": "boxed",
    "boxed_format": "boxed",
}


def canonical_answer(answer: str | None) -> str:
    """One label per answer: a number by its value (``"18"``, ``"18.0"``, ``"$18"`` → ``"18"``;
    ``"1,800"`` → ``"1800"``; 12 significant digits), other text whitespace-normalised,
    ``None`` → :data:`NONE`. Labels agree where ``numbers_equal`` calls answers equal (up to
    its relative tolerance)."""
    if answer is None:
        return NONE
    value = parse_number(answer)
    if value is not None:
        if value == 0:
            return "0"
        return format(value, ".12g")
    text = " ".join(answer.strip().rstrip(".").split())
    return text if text else NONE


def extracted_answers(texts: Sequence[str], extractor: str) -> list[str]:
    """The canonical final answer (:func:`canonical_answer`) of each text, by the extractor
    named ``extractor`` (a key of :data:`EXTRACTORS`)."""
    try:
        fn = EXTRACTORS[extractor]
    except KeyError:
        raise ValueError(
            f"answer extractor must be one of {sorted(EXTRACTORS)}, got {extractor!r}"
        ) from None
    return [canonical_answer(fn(t)) for t in texts]


def length_bins(
    lengths: np.ndarray, finished: np.ndarray, max_new_tokens: int, n_bins: int
) -> list[str]:
    """A length outcome per completion: ``"len<b>"`` for bin ``b = ⌊n_bins · len / N⌋`` of the
    tokens before the EOS (equal-width bins of ``[0, N)``), :data:`UNFINISHED` without an EOS.

    ``lengths [B]`` int, ``finished [B]`` bool, ``N = max_new_tokens``.
    """
    if n_bins < 1 or max_new_tokens < 1:
        raise ValueError(f"n_bins and max_new_tokens must be >= 1, got {n_bins}, {max_new_tokens}")
    lengths = np.asarray(lengths)
    finished = np.asarray(finished, bool)
    if lengths.shape != finished.shape or lengths.ndim != 1:
        raise ValueError(f"lengths {lengths.shape} and finished {finished.shape} must be [B]")
    b = np.minimum(lengths * n_bins // max_new_tokens, n_bins - 1)
    return [f"len{int(k)}" if f else UNFINISHED for k, f in zip(b, finished)]


def empirical_distribution(samples: Sequence[str], support: Sequence[str]) -> np.ndarray:
    """``p̂[K]`` float64: the fraction of ``samples`` equal to each outcome of ``support`` (an
    outcome outside ``support`` is an error: pass the union of outcomes)."""
    if not samples:
        raise ValueError("empirical_distribution needs at least one sample")
    counts = Counter(samples)
    missing = set(counts) - set(support)
    if missing:
        raise ValueError(f"samples hold outcomes outside the support: {sorted(missing)[:5]}")
    return np.asarray([counts[a] for a in support], np.float64) / len(samples)


def empirical_tv(a: Sequence[str], b: Sequence[str]) -> float:
    """``½ Σ_k |p̂_k − q̂_k|`` between the empirical distributions of two sample lists (any
    sizes), over the union of their outcomes; in ``[0, 1]``."""
    support = sorted(set(a) | set(b))
    return float(
        0.5 * np.abs(empirical_distribution(a, support) - empirical_distribution(b, support)).sum()
    )


def per_prompt_tv(a: Sequence[Sequence[str]], b: Sequence[Sequence[str]]) -> np.ndarray:
    """``[E]`` float64: :func:`empirical_tv` of prompt ``e``'s samples ``a[e]`` vs ``b[e]``."""
    if len(a) != len(b):
        raise ValueError(f"per_prompt_tv: {len(a)} vs {len(b)} prompts")
    return np.asarray([empirical_tv(x, y) for x, y in zip(a, b)], np.float64)


def l2sq_unbiased(a: Sequence[str], b: Sequence[str]) -> float:
    """An unbiased estimate of ``‖p − q‖₂² = Σ_k (p_k − q_k)²`` from ``n ≥ 2`` samples ``a``
    of ``p`` and ``m ≥ 2`` samples ``b`` of ``q`` (independent).

    With counts ``c_k`` (of ``a``) and ``d_k`` (of ``b``), the U-statistics
    ``Σ c_k (c_k − 1) / (n (n − 1))``, ``Σ d_k (d_k − 1) / (m (m − 1))`` and
    ``Σ c_k d_k / (n m)`` are unbiased for ``Σ p_k²``, ``Σ q_k²`` and ``Σ p_k q_k``, so

        L̂ = Σ c(c−1)/(n(n−1)) + Σ d(d−1)/(m(m−1)) − 2 Σ c d / (n m),    E L̂ = ‖p − q‖₂².

    Unlike the empirical TV it has no finite-sample bias: its mean is exactly 0 when
    ``p = q`` (so it can be negative for one prompt), and a mean over prompts whose interval
    excludes 0 shows a move without a noise floor. ``TV ≥ ½ ‖p − q‖₂``, so
    ``½ sqrt(max(L̂, 0))`` of a prompt average is a (Jensen-approximate) lower bound of the
    answer TV.
    """
    n, m = len(a), len(b)
    if n < 2 or m < 2:
        raise ValueError(f"l2sq_unbiased needs >= 2 samples on each side, got {n} and {m}")
    ca, cb = Counter(a), Counter(b)
    pp = sum(c * (c - 1) for c in ca.values()) / (n * (n - 1))
    qq = sum(d * (d - 1) for d in cb.values()) / (m * (m - 1))
    pq = sum(c * cb.get(k, 0) for k, c in ca.items()) / (n * m)
    return float(pp + qq - 2.0 * pq)


def per_prompt_l2sq(a: Sequence[Sequence[str]], b: Sequence[Sequence[str]]) -> np.ndarray:
    """``[E]`` float64: :func:`l2sq_unbiased` of prompt ``e``'s samples ``a[e]`` vs ``b[e]``."""
    if len(a) != len(b):
        raise ValueError(f"per_prompt_l2sq: {len(a)} vs {len(b)} prompts")
    return np.asarray([l2sq_unbiased(x, y) for x, y in zip(a, b)], np.float64)


def bootstrap_ci(
    values: np.ndarray, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """``(mean, lo, hi)``: the mean of per-prompt ``values [E]`` and its percentile bootstrap
    interval over prompts.

    Prompts are resampled with replacement ``n_boot`` times; ``lo, hi`` are the
    ``(1 ∓ level)/2`` quantiles of the resampled means. The interval is for the mean over the
    prompt population of the per-prompt statistic as computed (a finite-``n`` TV keeps its
    upward bias: compare with the noise floor, or bootstrap paired differences). ``E = 1``
    gives ``lo = hi = mean``; non-finite values are an error.
    """
    x = np.asarray(values, np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"bootstrap_ci needs a non-empty [E] array, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("bootstrap_ci: values must be finite")
    if n_boot < 1 or not 0 < level < 1:
        raise ValueError(f"bootstrap_ci: n_boot >= 1 and 0 < level < 1, got {n_boot}, {level}")
    mean = float(x.mean())
    if x.size == 1:
        return mean, mean, mean
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_boot, x.size))
    means = x[idx].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return mean, float(lo), float(hi)


def answer_bonus(answer: str, salt: int) -> float:
    """A fixed pseudo-random bonus in ``[-1, 1)`` for a canonical answer (0 for :data:`NONE`):
    the same answer string gets the same bonus on every prompt and in every process (a hash,
    not Python's salted ``hash``)."""
    if answer == NONE:
        return 0.0
    import hashlib

    h = hashlib.blake2b(f"{salt}:{answer}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") / 2.0**63 - 1.0


def expected_null_tv(probs: np.ndarray, n: int) -> float:
    """``E TV(p̂, p̂')`` of two independent ``n``-sample empirical distributions of one
    categorical ``p [K]``: the expected noise floor, by the exact multinomial sum (``K ≤ 3``
    and small ``n``; it grows as ``(n + 1)^(2K)``). Shows the size of the finite-``n`` bias
    (about ``Σ_k sqrt(p_k (1 − p_k) / (π n))`` for large ``n``); the jobs measure the floor
    empirically."""
    p = np.asarray(probs, np.float64)
    if p.ndim != 1 or p.size > 3 or n < 1:
        raise ValueError(f"expected_null_tv: p must be [K <= 3] and n >= 1, got {p.shape}, {n}")
    from itertools import product

    def pmf(counts: tuple[int, ...]) -> float:
        coef = math.factorial(n)
        for c in counts:
            coef //= math.factorial(c)
        return coef * float(np.prod([pk**c for pk, c in zip(p, counts)]))

    outcomes = [c for c in product(range(n + 1), repeat=p.size) if sum(c) == n]
    probs_c = [pmf(c) for c in outcomes]
    total = 0.0
    for c1, w1 in zip(outcomes, probs_c):
        for c2, w2 in zip(outcomes, probs_c):
            total += w1 * w2 * 0.5 * sum(abs(a - b) for a, b in zip(c1, c2)) / n
    return total
