"""Reward perturbations ``r' = r + ε·δ`` for text tasks, where many traces reach one answer.

On a text task the correct answer of a prompt is reached by many different completions (the
reasoning traces), so the task reward ties them all; a small ``δ`` breaks those ties, and the
policy-cliff question is how far the trained policy moves for it. Each ``δ`` is bounded,
``|δ| ≤ 1``, so ``ε`` is the size of the change in reward units:

* ``length``: ``δ(y) = −len(y) / N`` with ``len`` the tokens before the first EOS (``N`` if
  none) and ``N`` the generation budget: among equally correct traces the shorter ones earn
  more (the length penalties of RLVR recipes, as a perturbation).
* ``random_completion``: ``δ(y) = u(h(y))``, a fixed pseudo-random value in ``[−1, 1)`` of the
  completion's token ids up to and including its EOS (a 32-bit hash): every distinct trace
  gets its own bonus, so ties among traces of one answer break at random.
* ``random_answer``: ``δ(y) = u(a(y))``, a fixed pseudo-random value of the *extracted final
  answer* (``cliffjax.analysis.sampled_answers.answer_bonus``; 0 for an unparsable one):
  traces of one answer stay tied, answers are reweighted — the text analogue of the digit
  tasks' ``random`` bonus per answer string. Computed on the host (decode + extract) through
  ``jax.pure_callback`` (``vmap_method="sequential"``: under ``jax.vmap`` it runs once per run).

:class:`TextPerturbedReward` is the static transform of ``RLProgram.transform``; the traced
part of the shift is a :class:`TextPerturbation` (the hash salt), so a vmapped sweep over ε
shares one program.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Final, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from cliffjax.analysis.sampled_answers import EXTRACTORS, answer_bonus, extracted_answers

Array = jax.Array

TEXT_PERTURBATIONS: Final = ("length", "random_completion", "random_answer")


class TextPerturbation(NamedTuple):
    """The traced part of a text ``δ``.

    Attributes:
      salt: uint32 scalar seed of the pseudo-random bonuses (``sweep.perturbation_seed``).
    """

    salt: Array


def first_eos_length(completions: Array, eos_ids: tuple[int, ...]) -> Array:
    """``[B]`` int32: tokens before the first of ``eos_ids`` in each row (``N`` if none)."""
    is_eos = jnp.isin(completions, jnp.asarray(eos_ids, completions.dtype))
    n = completions.shape[1]
    return jnp.where(is_eos.any(axis=1), jnp.argmax(is_eos, axis=1), n).astype(jnp.int32)


def token_hash_uniform(completions: Array, lengths: Array, salt: Array) -> Array:
    """``[B]`` float32 in ``[−1, 1)``: a 32-bit FNV-1a hash of each row's first
    ``lengths + 1`` tokens (the text and its EOS), finished with the murmur3 mixer.

    A fixed function of the token sequence and ``salt``; tokens after the EOS do not count.
    """
    toks = completions.astype(jnp.uint32)
    n = toks.shape[1]
    keep = jnp.arange(n)[None, :] <= lengths[:, None]
    h0 = jnp.full((toks.shape[0],), 2166136261, jnp.uint32) ^ salt.astype(jnp.uint32)

    def body(h, col):
        t, k = col
        return jnp.where(k, (h ^ t) * jnp.uint32(16777619), h), None

    h, _ = jax.lax.scan(body, h0, (toks.T, keep.T))
    h = h ^ (h >> 16)
    h = h * jnp.uint32(0x85EBCA6B)
    h = h ^ (h >> 13)
    h = h * jnp.uint32(0xC2B2AE35)
    h = h ^ (h >> 16)
    return (h >> 8).astype(jnp.float32) / float(1 << 23) - 1.0


@dataclasses.dataclass(frozen=True)
class TextPerturbedReward:
    """The reward transform of the text policy-cliff runs (module docstring).

    Attributes:
      kind: one of :data:`TEXT_PERTURBATIONS`.
      max_new_tokens: the generation budget ``N``.
      eos_ids: the tokenizer's EOS ids (a completion ends at the first of them).
      tokenizer: the task's tokenizer (decodes completions for ``random_answer``; hashable).
      extractor: the answer extractor of ``random_answer`` (a key of
        ``cliffjax.analysis.sampled_answers.EXTRACTORS``).
    """

    kind: str
    max_new_tokens: int
    eos_ids: tuple[int, ...]
    tokenizer: Any = None
    extractor: str = "gsm8k"

    def __post_init__(self) -> None:
        if self.kind not in TEXT_PERTURBATIONS:
            raise ValueError(
                f"TextPerturbedReward.kind must be one of {TEXT_PERTURBATIONS}, got {self.kind!r}"
            )
        if self.kind == "random_answer" and self.tokenizer is None:
            raise ValueError("TextPerturbedReward: kind 'random_answer' needs the tokenizer")
        if self.extractor not in EXTRACTORS:
            raise ValueError(
                f"TextPerturbedReward.extractor must be one of {sorted(EXTRACTORS)}, got "
                f"{self.extractor!r}"
            )

    def _host_answer_bonus(self, completions: np.ndarray, salt: np.ndarray) -> np.ndarray:
        texts = self.tokenizer.decode_batch(np.asarray(completions))
        answers = extracted_answers(texts, self.extractor)
        return np.asarray([answer_bonus(a, int(salt)) for a in answers], np.float32)

    def delta(
        self,
        perturbation: TextPerturbation,
        completions: Array,
        meta: dict[str, Array],
        components: dict[str, Array],
    ) -> Array:
        """``δ[B]`` float32 of completions ``[B, N]`` (meta and components unused)."""
        del meta, components
        lengths = first_eos_length(completions, self.eos_ids)
        if self.kind == "length":
            return -lengths.astype(jnp.float32) / self.max_new_tokens
        if self.kind == "random_completion":
            return token_hash_uniform(completions, lengths, perturbation.salt)
        out = jax.ShapeDtypeStruct((completions.shape[0],), jnp.float32)
        return jax.pure_callback(
            self._host_answer_bonus,
            out,
            completions,
            perturbation.salt,
            vmap_method="sequential",
        )
