"""A task with many correct answers: write an N-digit string whose digits sum to S.

Prompt ``"S=17,N=3:"`` (S zero-padded to two digits, N one digit); any completion of exactly N
digits with digit sum S, then EOS, is correct (e.g. ``"890"``, ``"979"``, ``"089"`` when
leading zeros are allowed). Every correct answer earns the same reward, so the optimal
policies form a large tied set: the situation the policy-cliff work studies (a small reward
change can move the optimal policy far).

Tie-breaking perturbation: ``r' = r + ε·δ(answer)`` on correct answers, with ``δ ∈ [0, 1]``:

* ``bonus_kind="lexicographic"``: ``δ = value / (10^N - 1)`` (the largest number is the unique
  optimum of r'),
* ``bonus_kind="random"``: δ drawn once, uniform on [0, 1), from ``bonus_seed``,
* ``"none"`` (or ``bonus_eps = 0``): r' = r.

``bonus_table()`` returns the δ table and ``reward_with_bonus`` accepts any table, so a sweep
can build r' for its own δ without a new task.

Held-out split: the (S, N) pairs are shuffled with ``split_seed``; an ``eval_fraction`` of them
forms the evaluation set and never appears in training prompts or supervised examples.
Supervised examples draw a correct answer uniformly from the answer set of their prompt.
"""

from __future__ import annotations

import dataclasses
import itertools

import jax
import jax.numpy as jnp
import numpy as np

from cliffjax.tasks.base import (
    Meta,
    PairPoolMixin,
    const_column,
    digit_columns,
    jit_method,
    jit_method_n,
    response_length,
    sft_from_target,
)
from cliffjax.tokenizers.char import TOKENIZER, CharTokenizer

Array = jax.Array

_BONUS_KINDS = ("none", "lexicographic", "random")


@dataclasses.dataclass(frozen=True)
class ManyAnswersConfig:
    """Digit-sum task configuration.

    Attributes:
      min_digits: smallest N (>= 1).
      max_digits: largest N (<= 5: the answer sets are enumerated).
      allow_leading_zero: if False, answers with N > 1 must not start with 0.
      eval_fraction: fraction of the (S, N) pairs held out for evaluation.
      split_seed: seed of the train / held-out shuffle.
      extra_tokens: completion slots beyond max_digits + EOS (room for wrong lengths).
      bonus_eps: ε of the tie-breaking perturbation (0 = plain reward).
      bonus_kind: δ used by ``reward``: "none", "lexicographic" or "random".
      bonus_seed: seed of the "random" δ table.
    """

    min_digits: int = 2
    max_digits: int = 4
    allow_leading_zero: bool = True
    eval_fraction: float = 0.2
    split_seed: int = 0
    extra_tokens: int = 1
    bonus_eps: float = 0.0
    bonus_kind: str = "none"
    bonus_seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.min_digits, int) or not 1 <= self.min_digits <= 5:
            raise ValueError(
                f"ManyAnswersConfig.min_digits must be an int in [1, 5], got {self.min_digits!r}"
            )
        if not isinstance(self.max_digits, int) or not self.min_digits <= self.max_digits <= 5:
            raise ValueError(
                f"ManyAnswersConfig.max_digits must be an int in [min_digits, 5], got {self.max_digits!r}"
            )
        if not 0.0 < self.eval_fraction < 1.0:
            raise ValueError(
                f"ManyAnswersConfig.eval_fraction must be in (0, 1), got {self.eval_fraction}"
            )
        if not isinstance(self.extra_tokens, int) or self.extra_tokens < 0:
            raise ValueError(
                f"ManyAnswersConfig.extra_tokens must be an int >= 0, got {self.extra_tokens!r}"
            )
        if not self.bonus_eps >= 0:
            raise ValueError(f"ManyAnswersConfig.bonus_eps must be >= 0, got {self.bonus_eps}")
        if self.bonus_kind not in _BONUS_KINDS:
            raise ValueError(
                f"ManyAnswersConfig.bonus_kind must be one of {_BONUS_KINDS}, got {self.bonus_kind!r}"
            )


def enumerate_answers(s: int, n: int, allow_leading_zero: bool = True) -> list[str]:
    """All correct answers (strings of n digits with digit sum s), in increasing order."""
    out = []
    for digits in itertools.product(range(10), repeat=n):
        if sum(digits) == s and (allow_leading_zero or n == 1 or digits[0] != 0):
            out.append("".join(map(str, digits)))
    return out


def _answer_values(s: int, n: int, allow_leading_zero: bool) -> np.ndarray:
    values = np.arange(10**n)
    digit_sum = np.zeros_like(values)
    rest = values.copy()
    for _ in range(n):
        digit_sum += rest % 10
        rest //= 10
    ok = digit_sum == s
    if not allow_leading_zero and n > 1:
        ok &= values >= 10 ** (n - 1)
    return values[ok]


class ManyAnswersTask(PairPoolMixin):
    """Digit-sum task (module docstring); implements ``Task``."""

    def __init__(
        self, cfg: ManyAnswersConfig = ManyAnswersConfig(), tokenizer: CharTokenizer = TOKENIZER
    ) -> None:
        self.config = cfg
        self.tokenizer = tokenizer
        self.name = "many_answers"
        self.prompt_len = 9  # "S=", two digits, ",N=", one digit, ":"
        self.max_new_tokens = cfg.max_digits + 1 + cfg.extra_tokens
        self.answer_digits = cfg.max_digits
        self.has_flawed_teacher = False
        pairs = []
        for n in range(cfg.min_digits, cfg.max_digits + 1):
            s_min = 0 if (cfg.allow_leading_zero or n == 1) else 1
            pairs += [(s, n) for s in range(s_min, 9 * n + 1)]
        pairs = np.asarray(pairs, np.int32)
        perm = np.random.default_rng(cfg.split_seed).permutation(len(pairs))
        n_eval = max(1, round(cfg.eval_fraction * len(pairs)))
        if n_eval >= len(pairs):
            raise ValueError("ManyAnswersConfig.eval_fraction leaves no training pairs")
        self._eval_pairs = jnp.asarray(pairs[perm[:n_eval]])
        train = pairs[perm[n_eval:]]
        self._train_pairs = jnp.asarray(train)
        # Answer table of the training pairs, for uniform supervised answers.
        answer_lists = [_answer_values(int(s), int(n), cfg.allow_leading_zero) for s, n in train]
        width = max(len(v) for v in answer_lists)
        table = np.zeros((len(train), width), np.int32)
        for i, v in enumerate(answer_lists):
            table[i, : len(v)] = v
        self._answer_table = jnp.asarray(table)
        self._answer_counts = jnp.asarray([len(v) for v in answer_lists], jnp.int32)
        self._bonus = self.bonus_table(cfg.bonus_kind)

    def __hash__(self) -> int:  # tasks are static arguments of jit'd helpers (evaluate)
        return hash((type(self), self.config, self.tokenizer))

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and (self.config, self.tokenizer) == (
            other.config,
            other.tokenizer,
        )

    # -- prompts ---------------------------------------------------------------------------
    @jit_method
    def prompts_for(self, s: Array, n: Array) -> tuple[Array, Meta]:
        """Prompt tokens ``[B, 9]`` and meta ``{"s", "n"}`` for target sums and lengths."""
        s = jnp.asarray(s, jnp.int32)
        n = jnp.asarray(n, jnp.int32)
        tok, b = self.tokenizer, s.shape[0]
        cols = [
            const_column(tok.id_of("S"), b),
            const_column(tok.id_of("="), b),
            digit_columns(s, 2, tok),
            const_column(tok.id_of(","), b),
            const_column(tok.id_of("N"), b),
            const_column(tok.id_of("="), b),
            digit_columns(n, 1, tok),
            const_column(tok.id_of(":"), b),
        ]
        return jnp.concatenate(cols, axis=1), {"s": s, "n": n}

    @jit_method_n
    def train_prompts(self, key: Array, n: int) -> tuple[Array, Meta]:
        """``n`` prompts drawn uniformly (with replacement) from the training (S, N) pairs."""
        idx = jax.random.randint(key, (n,), 0, self._train_pairs.shape[0])
        pairs = self._train_pairs[idx]
        return self.prompts_for(pairs[:, 0], pairs[:, 1])

    def answers(self, s: int, n: int) -> list[str]:
        """All correct answers of one prompt (the tied optima)."""
        return enumerate_answers(s, n, self.config.allow_leading_zero)

    # -- reward ----------------------------------------------------------------------------
    def parse(self, completions: Array, completion_mask: Array, meta: Meta) -> tuple[Array, Array]:
        """``(correct [B] float32, value [B] int32)``: value is the answer read as a number."""
        tok = self.tokenizer
        n = meta["n"][:, None]
        t = jnp.arange(completions.shape[1], dtype=jnp.int32)[None, :]
        digit = completions - tok.digit0_id
        is_digit = (digit >= 0) & (digit <= 9) & (completion_mask > 0)
        in_answer = t < n
        digits_ok = jnp.all(is_digit | ~in_answer, axis=1)
        length, has_eos = response_length(
            jnp.where(completion_mask > 0, completions, tok.pad_id), tok.eos_id
        )
        ends_right = has_eos & (length == meta["n"])
        d = jnp.where(in_answer & is_digit, digit, 0)
        digit_sum = jnp.sum(d, axis=1)
        # value = Σ_t d_t · 10^(n - 1 - t) over the answer positions.
        power = jnp.where(in_answer, n - 1 - t, 0)
        value = jnp.sum(d * (10**power), axis=1).astype(jnp.int32)
        lead_ok = jnp.ones_like(digits_ok)
        if not self.config.allow_leading_zero:
            lead_ok = (meta["n"] == 1) | (d[:, 0] != 0)
        correct = digits_ok & ends_right & (digit_sum == meta["s"]) & lead_ok
        return correct.astype(jnp.float32), value

    def bonus_table(self, kind: str = "lexicographic") -> Array:
        """δ table ``[max_digits + 1, 10^max_digits]`` float32: δ(N, value) in [0, 1]."""
        if kind not in _BONUS_KINDS:
            raise ValueError(f"kind must be one of {_BONUS_KINDS}, got {kind!r}")
        size = 10**self.config.max_digits
        values = np.arange(size, dtype=np.float64)
        table = np.zeros((self.config.max_digits + 1, size), np.float32)
        if kind == "lexicographic":
            for n in range(1, self.config.max_digits + 1):
                table[n, : 10**n] = values[: 10**n] / (10**n - 1)
        elif kind == "random":
            table[:] = np.random.default_rng(self.config.bonus_seed).random(table.shape)
        return jnp.asarray(table)

    @jit_method
    def reward_with_bonus(
        self,
        completions: Array,
        completion_mask: Array,
        meta: Meta,
        bonus: Array,
        eps: float | Array,
    ) -> tuple[Array, dict[str, Array]]:
        """``r' = correct + ε · correct · δ(N, value)`` for any δ table (see ``bonus_table``)."""
        correct, value = self.parse(completions, completion_mask, meta)
        delta = bonus[meta["n"], jnp.clip(value, 0, bonus.shape[1] - 1)] * correct
        return correct + eps * delta, {"correct": correct, "bonus": delta}

    @jit_method
    def reward(
        self, completions: Array, completion_mask: Array, meta: Meta
    ) -> tuple[Array, dict[str, Array]]:
        """1.0 for a correct answer (+ ε·δ if the config sets a bonus), else 0.0."""
        return self.reward_with_bonus(
            completions, completion_mask, meta, self._bonus, self.config.bonus_eps
        )

    @jit_method_n
    def sft_batch(self, key: Array, n: int) -> tuple[Array, Array]:
        """Training prompts, each with a correct answer drawn uniformly from its answer set."""
        k_pair, k_ans = jax.random.split(key)
        idx = jax.random.randint(k_pair, (n,), 0, self._train_pairs.shape[0])
        pairs = self._train_pairs[idx]
        prompts, _ = self.prompts_for(pairs[:, 0], pairs[:, 1])
        u = jax.random.uniform(k_ans, (n,))
        j = jnp.minimum(
            (u * self._answer_counts[idx]).astype(jnp.int32), self._answer_counts[idx] - 1
        )
        value = self._answer_table[idx, j]
        nd = pairs[:, 1][:, None]
        t = jnp.arange(self.max_new_tokens, dtype=jnp.int32)[None, :]
        digit = (value[:, None] // (10 ** jnp.clip(nd - 1 - t, 0, None))) % 10
        tok = self.tokenizer
        target = jnp.where(
            t < nd, digit + tok.digit0_id, jnp.where(t == nd, tok.eos_id, tok.pad_id)
        )
        return sft_from_target(prompts, target.astype(jnp.int32), (t <= nd).astype(jnp.int32))
