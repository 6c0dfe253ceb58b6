"""A multi-reward task: addition scored by weighted correctness, format and length terms.

Prompts, held-out split and supervised examples are those of ``addition``
(``cliffjax.tasks.arithmetic``); completions get ``extra_tokens`` spare slots so that answers with
trailing junk are possible. With the response = the completion before its first EOS (all N
slots if there is none), the components are

* ``correct``: 1 iff the response starts with the canonical answer digits and the next token
  is not a digit ("82", "82+5" and "82," are correct for 37+45; "820", "082", "8" are not);
* ``format``: 1 iff the response is exactly one canonical number (digits, no leading zero
  unless it is "0") and an EOS ends it;
* ``length``: ``-max(0, L - L*) / N`` in [-1, 0], where ``L`` is the number of generated
  tokens (EOS included; the mask sum) and ``L* = len(answer) + 1``;

and the reward is ``w_correct · correct + w_format · format + w_length · length``.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from cliffjax.tasks.arithmetic import AdditionConfig, ArithmeticTask
from cliffjax.tasks.base import Meta, jit_method, num_digits, response_length
from cliffjax.tokenizers.char import TOKENIZER, CharTokenizer

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class MultiRewardConfig:
    """Weights and the underlying addition problem.

    Attributes:
      n_digits: digits per addition operand (1 to 3).
      n_eval: size of the held-out evaluation set.
      split_seed: seed of the train / held-out shuffle.
      teacher_flaw_rate: fraction of supervised labels that drop every carry.
      extra_tokens: completion slots beyond the longest answer + EOS.
      w_correct: weight of the correctness component.
      w_format: weight of the format component.
      w_length: weight of the (non-positive) length component.
    """

    n_digits: int = 2
    n_eval: int = 1000
    split_seed: int = 0
    teacher_flaw_rate: float = 0.0
    extra_tokens: int = 3
    w_correct: float = 1.0
    w_format: float = 0.2
    w_length: float = 0.2

    def __post_init__(self) -> None:
        AdditionConfig(
            self.n_digits, self.n_eval, self.split_seed, self.teacher_flaw_rate, self.extra_tokens
        )
        for name in ("w_correct", "w_format", "w_length"):
            if not getattr(self, name) >= 0:
                raise ValueError(
                    f"MultiRewardConfig.{name} must be >= 0, got {getattr(self, name)}"
                )


class MultiRewardTask(ArithmeticTask):
    """Addition with a weighted multi-component reward (module docstring)."""

    def __init__(
        self, cfg: MultiRewardConfig = MultiRewardConfig(), tokenizer: CharTokenizer = TOKENIZER
    ) -> None:
        super().__init__(
            AdditionConfig(
                cfg.n_digits, cfg.n_eval, cfg.split_seed, cfg.teacher_flaw_rate, cfg.extra_tokens
            ),
            tokenizer,
        )
        self.name = "multi_reward"
        self.config = cfg

    @jit_method
    def components(
        self, completions: Array, completion_mask: Array, meta: Meta
    ) -> dict[str, Array]:
        """The three components ``[B]`` float32 (module docstring)."""
        tok = self.tokenizer
        n_slots = completions.shape[1]
        comp = jnp.where(completion_mask > 0, completions, tok.pad_id)
        length, has_eos = response_length(comp, tok.eos_id)
        t = jnp.arange(n_slots, dtype=jnp.int32)[None, :]
        digit = comp - tok.digit0_id
        is_digit = (digit >= 0) & (digit <= 9) & (t < length[:, None])
        # Length of the leading run of digits.
        run = jnp.sum(jnp.cumprod(is_digit.astype(jnp.int32), axis=1), axis=1)
        target, _ = self.target(meta["answer"], n_slots)
        nd = num_digits(meta["answer"], self.answer_digits)
        prefix_match = jnp.all((comp == target) | (t >= nd[:, None]), axis=1)
        correct = prefix_match & (run == nd)
        first_digit = jnp.where(run > 0, digit[:, 0], 0)
        canonical = (run >= 1) & ((run == 1) | (first_digit != 0))
        fmt = canonical & (run == length) & has_eos
        n_generated = jnp.sum((completion_mask > 0).astype(jnp.int32), axis=1)
        excess = jnp.maximum(0, n_generated - (nd + 1))
        length_term = -excess.astype(jnp.float32) / n_slots
        return {
            "correct": correct.astype(jnp.float32),
            "format": fmt.astype(jnp.float32),
            "length": length_term,
        }

    @jit_method
    def reward(
        self, completions: Array, completion_mask: Array, meta: Meta
    ) -> tuple[Array, dict[str, Array]]:
        """Weighted sum of the components; returns ``(reward [B], components)``."""
        c = self.components(completions, completion_mask, meta)
        w = self.config
        total = w.w_correct * c["correct"] + w.w_format * c["format"] + w.w_length * c["length"]
        return total, c
