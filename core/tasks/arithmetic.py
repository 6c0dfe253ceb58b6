"""Arithmetic tasks: addition and multiplication modulo m, with exact-answer rewards.

Addition, ``n_digits = 2``: prompt ``"37+45="`` (operands zero-padded: ``"07+45="``),
answer ``"82"`` then EOS. Multiplication modulo m (m = 97): ``"37*45%97="`` → ``"16"`` EOS
(operands in [0, m), zero-padded to the width of m - 1).

Reward (both): 1 iff the completion is the canonical decimal answer (no leading zeros, "0"
for zero) immediately followed by EOS; else 0. ``"082"``, ``"82"`` without EOS, and
``"821"`` all score 0.

Held-out split: all operand pairs are enumerated and shuffled with ``split_seed``; the first
``n_eval`` form the fixed evaluation set, the rest the training pool, so training prompts and
supervised examples never contain an evaluation pair.

Flawed teacher (addition only): in ``sft_batch`` a fraction
``teacher_flaw_rate`` of the labels drop every carry (digit-wise sum mod 10, "37+45" → "72"),
so supervised training plateaus (~0.45 accuracy) and reinforcement learning on the exact reward
has something to add.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from cliffjax.tasks.base import (
    Meta,
    PairPoolMixin,
    const_column,
    digit_columns,
    digits_msb,
    exact_match,
    jit_method,
    jit_method_n,
    number_tokens,
    sft_from_target,
)
from cliffjax.tokenizers.char import TOKENIZER, CharTokenizer

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class AdditionConfig:
    """Addition of two zero-padded ``n_digits`` numbers.

    Attributes:
      n_digits: digits per operand (1 to 3; the pair space 10^(2·n_digits) is enumerated).
      n_eval: size of the held-out evaluation set.
      split_seed: seed of the train / held-out shuffle.
      teacher_flaw_rate: fraction of supervised labels that drop every carry (0 = clean).
      extra_tokens: completion slots beyond the longest answer + EOS.
    """

    n_digits: int = 2
    n_eval: int = 1000
    split_seed: int = 0
    teacher_flaw_rate: float = 0.6
    extra_tokens: int = 0

    def __post_init__(self) -> None:
        if self.n_digits not in (1, 2, 3):
            raise ValueError(f"AdditionConfig.n_digits must be 1, 2 or 3, got {self.n_digits!r}")
        _check_split(type(self).__name__, self.n_eval, 10 ** (2 * self.n_digits))
        if not 0.0 <= self.teacher_flaw_rate <= 1.0:
            raise ValueError(
                f"AdditionConfig.teacher_flaw_rate must be in [0, 1], got {self.teacher_flaw_rate}"
            )
        _check_nonneg(type(self).__name__, "extra_tokens", self.extra_tokens)


@dataclasses.dataclass(frozen=True)
class MultModConfig:
    """Multiplication modulo ``modulus`` of two operands in [0, modulus).

    Attributes:
      modulus: m, 2 to 999 (written in the prompt).
      n_eval: size of the held-out evaluation set.
      split_seed: seed of the train / held-out shuffle.
      extra_tokens: completion slots beyond the longest answer + EOS.
    """

    modulus: int = 97
    n_eval: int = 1000
    split_seed: int = 0
    extra_tokens: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.modulus, int) or not 2 <= self.modulus <= 999:
            raise ValueError(
                f"MultModConfig.modulus must be an int in [2, 999], got {self.modulus!r}"
            )
        _check_split(type(self).__name__, self.n_eval, self.modulus**2)
        _check_nonneg(type(self).__name__, "extra_tokens", self.extra_tokens)


def _check_split(cls: str, n_eval: int, n_pairs: int) -> None:
    if not isinstance(n_eval, int) or not 1 <= n_eval < n_pairs:
        raise ValueError(f"{cls}.n_eval must be an int in [1, {n_pairs - 1}], got {n_eval!r}")


def _check_nonneg(cls: str, name: str, value: int) -> None:
    if not isinstance(value, int) or value < 0:
        raise ValueError(f"{cls}.{name} must be an int >= 0, got {value!r}")


def _split_pairs(n_values: int, n_eval: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled (a, b) pairs over [0, n_values)²: (held-out [n_eval, 2], train [rest, 2])."""
    a, b = np.meshgrid(np.arange(n_values), np.arange(n_values), indexing="ij")
    pairs = np.stack([a.ravel(), b.ravel()], axis=1).astype(np.int32)
    perm = np.random.default_rng(seed).permutation(len(pairs))
    return pairs[perm[:n_eval]], pairs[perm[n_eval:]]


class ArithmeticTask(PairPoolMixin):
    """Addition or multiplication modulo m (see the module docstring); implements ``Task``."""

    def __init__(
        self, cfg: AdditionConfig | MultModConfig, tokenizer: CharTokenizer = TOKENIZER
    ) -> None:
        self.config = cfg
        self.tokenizer = tokenizer
        if isinstance(cfg, AdditionConfig):
            self.name = "addition"
            self.op = "add"
            self.operand_digits = cfg.n_digits
            n_values = 10**cfg.n_digits
            self.answer_digits = cfg.n_digits + 1
            self._suffix = [tokenizer.id_of("=")]
            self._op = tokenizer.id_of("+")
            self.flaw_rate = cfg.teacher_flaw_rate
        elif isinstance(cfg, MultModConfig):
            self.name = "mult_mod"
            self.op = "mult_mod"
            self.modulus = cfg.modulus
            self.operand_digits = len(str(cfg.modulus - 1))
            n_values = cfg.modulus
            self.answer_digits = self.operand_digits
            self._suffix = [tokenizer.id_of(c) for c in f"%{cfg.modulus}="]
            self._op = tokenizer.id_of("*")
            self.flaw_rate = 0.0
        else:
            raise ValueError(
                f"cfg must be AdditionConfig or MultModConfig, got {type(cfg).__name__}"
            )
        self.prompt_len = 2 * self.operand_digits + 1 + len(self._suffix)
        self.max_new_tokens = self.answer_digits + 1 + cfg.extra_tokens
        held, train = _split_pairs(n_values, cfg.n_eval, cfg.split_seed)
        self._eval_pairs = jnp.asarray(held)
        self._train_pairs = jnp.asarray(train)

    def __hash__(self) -> int:  # tasks are static arguments of jit'd helpers (evaluate)
        return hash((type(self), self.config, self.tokenizer))

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and (self.config, self.tokenizer) == (
            other.config,
            other.tokenizer,
        )

    @property
    def has_flawed_teacher(self) -> bool:
        """Whether the task has a flawed teacher's answer (``carry_free_answer``): addition."""
        return self.op == "add"

    # -- arithmetic ------------------------------------------------------------------------
    def answer(self, a: Array, b: Array) -> Array:
        """Correct answers ``[B]`` int32."""
        if self.op == "add":
            return a + b
        return (a * b) % self.modulus

    def carry_free_answer(self, a: Array, b: Array) -> Array:
        """The flawed teacher's addition: each digit (a_i + b_i) mod 10, every carry dropped."""
        d = self.operand_digits
        digits = (digits_msb(a, d) + digits_msb(b, d)) % 10
        powers = 10 ** jnp.arange(d - 1, -1, -1, dtype=jnp.int32)
        return jnp.sum(digits * powers[None, :], axis=1).astype(jnp.int32)

    # -- prompts ---------------------------------------------------------------------------
    @jit_method
    def prompts_for(self, a: Array, b: Array) -> tuple[Array, Meta]:
        """Prompt tokens ``[B, P]`` and meta for operand arrays ``a, b`` ``[B]``."""
        a = jnp.asarray(a, jnp.int32)
        b = jnp.asarray(b, jnp.int32)
        n = a.shape[0]
        cols = [
            digit_columns(a, self.operand_digits, self.tokenizer),
            const_column(self._op, n),
            digit_columns(b, self.operand_digits, self.tokenizer),
            *[const_column(t, n) for t in self._suffix],
        ]
        meta = {"a": a, "b": b, "answer": self.answer(a, b)}
        return jnp.concatenate(cols, axis=1), meta

    def _draw_train_pairs(self, key: Array, n: int) -> tuple[Array, Array]:
        idx = jax.random.randint(key, (n,), 0, self._train_pairs.shape[0])
        pairs = self._train_pairs[idx]
        return pairs[:, 0], pairs[:, 1]

    @jit_method_n
    def train_prompts(self, key: Array, n: int) -> tuple[Array, Meta]:
        """``n`` prompts drawn uniformly (with replacement) from the training pool."""
        return self.prompts_for(*self._draw_train_pairs(key, n))

    # -- reward and supervision --------------------------------------------------------------
    def target(self, answer: Array, width: int) -> tuple[Array, Array]:
        """Canonical answer tokens and mask ``[B, width]`` (digits, EOS, padding)."""
        return number_tokens(answer, self.answer_digits, width, self.tokenizer)

    @jit_method
    def reward(
        self, completions: Array, completion_mask: Array, meta: Meta
    ) -> tuple[Array, dict[str, Array]]:
        """1.0 for the exact canonical answer followed by EOS, else 0.0 (``[B]`` float32)."""
        target, target_mask = self.target(meta["answer"], completions.shape[1])
        correct = exact_match(completions, completion_mask, target, target_mask)
        return correct, {"correct": correct}

    @jit_method_n
    def sft_batch(self, key: Array, n: int) -> tuple[Array, Array]:
        """Warm-start examples from the training pool; a ``flaw_rate`` fraction drop carries."""
        k_pairs, k_flaw = jax.random.split(key)
        a, b = self._draw_train_pairs(k_pairs, n)
        prompts, meta = self.prompts_for(a, b)
        label = meta["answer"]
        if self.flaw_rate > 0:
            flawed = jax.random.bernoulli(k_flaw, self.flaw_rate, (n,))
            label = jnp.where(flawed, self.carry_free_answer(a, b), label)
        target, target_mask = self.target(label, self.max_new_tokens)
        return sft_from_target(prompts, target, target_mask)
