"""Shared fixtures of the trainer tests: one tiny policy and 1-digit addition.

One tiny model (d=32, 1 layer) and 1-digit addition (prompt "3+4=", 3 answer slots) are
shared by every test, so equal programs compile once per session.
"""

import jax
import jax.numpy as jnp
import pytest

from cliffjax.models.policy import make_policy
from cliffjax.models.transformer import TransformerConfig
from cliffjax.tasks.arithmetic import AdditionConfig, ArithmeticTask


class ParityTask:
    """1-digit addition prompts with a reward a random policy gets about half the time: 1 iff
    the first completion token id is even (so groups are often, not always, mixed)."""

    def __init__(self, base):
        self.base = base
        self.name = "parity"
        self.tokenizer = base.tokenizer
        self.prompt_len = base.prompt_len
        self.max_new_tokens = base.max_new_tokens
        self.answer_digits = base.answer_digits
        self.has_flawed_teacher = False

    def __hash__(self):
        return hash((type(self), self.base))

    def __eq__(self, other):
        return type(other) is type(self) and other.base == self.base

    def train_prompts(self, key, n):
        return self.base.train_prompts(key, n)

    def train_prompt_set(self, key, n):
        return self.base.train_prompt_set(key, n)

    def eval_set(self):
        return self.base.eval_set()

    def sft_batch(self, key, n):
        return self.base.sft_batch(key, n)

    def reward(self, completions, completion_mask, meta):
        r = (completions[:, 0] % 2 == 0).astype(jnp.float32)
        return r, {"correct": r}


@pytest.fixture(scope="session")
def task():
    return ArithmeticTask(AdditionConfig(n_digits=1, n_eval=20, teacher_flaw_rate=0.0))


@pytest.fixture(scope="session")
def parity_task(task):
    return ParityTask(task)


@pytest.fixture(scope="session")
def policy(task):
    cfg = TransformerConfig(
        vocab_size=task.tokenizer.vocab_size,
        max_seq_len=8,
        d_model=32,
        n_layers=1,
        n_heads=2,
        d_ff=64,
    )
    return make_policy(cfg, jax.random.PRNGKey(0))
