"""The ``Task`` protocol and JAX helpers shared by the synthetic tasks.

A task turns a PRNG key into fixed-width prompts, scores completions with a verifiable reward
computed in JAX (jit-able, no Python per example), holds a fixed held-out evaluation set and
generates supervised warm-start examples.

Conventions used by every task:

* ``prompts``: ``[n, P]`` int32, exactly ``task.prompt_len`` tokens, no padding inside; a task
  with ``padded_prompts = True`` (the text tasks) left pads them with ``pad_id`` instead
  (:func:`prompt_mask_of` gives the mask every consumer passes to the sampler and scorer).
* ``meta``: ``dict[str, Array]``, each ``[n]`` (leading dimension = prompt count). To score G
  completions per prompt, repeat it: ``jax.tree.map(lambda x: jnp.repeat(x, G, 0), meta)``.
* ``reward(completions [B, N], completion_mask [B, N], meta) -> (reward [B] float32,
  components)``; ``components`` always holds ``"correct"`` (1.0 / 0.0), which ``evaluate``
  reports as accuracy. ``N`` may differ from ``task.max_new_tokens``.
* The response is the completion up to its first EOS; tokens after it are ignored (the
  sampler writes padding there and masks it).
* ``sft_batch(key, n) -> (tokens [n, P + N], loss_mask [n, P + N])`` with
  ``N = task.max_new_tokens``: ``tokens[:, :P]`` is the prompt and ``tokens[:, P:]`` the
  target completion (answer, EOS, padding). ``loss_mask[:, t] = 1`` where ``tokens[:, t]`` is
  a target token (answer tokens and the EOS), i.e. the token predicted from
  ``tokens[:, :t]``; prompt and padding positions are 0. The per-token log-probs are
  ``score(graphdef, params, tokens[:, :P], tokens[:, P:])`` masked by ``loss_mask[:, P:]``.
"""

from __future__ import annotations

from functools import partial
from typing import Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np

from cliffjax.sampling.sampler import SamplingConfig
from cliffjax.tokenizers import CharTokenizer, Tokenizer

Array = jax.Array
Meta = dict[str, Array]


@runtime_checkable
class Task(Protocol):
    """What the trainer, the sampler and ``evaluate`` need from a task."""

    name: str
    tokenizer: Tokenizer  # the synthetic tasks use CharTokenizer (digit ids are arithmetic)
    prompt_len: int
    max_new_tokens: int
    answer_digits: int  # digits of the longest correct answer (the answer set of analyses)
    has_flawed_teacher: bool  # offers carry_free_answer (dataset preference pairs)

    def train_prompts(self, key: Array, n: int) -> tuple[Array, Meta]:
        """``n`` training prompts ``[n, P]`` (never from the held-out set) and their meta."""
        ...

    def eval_set(self) -> tuple[Array, Meta]:
        """The fixed held-out prompts ``[n_eval, P]`` and their meta."""
        ...

    def reward(
        self, completions: Array, completion_mask: Array, meta: Meta
    ) -> tuple[Array, dict[str, Array]]:
        """Rewards ``[B]`` float32 and named components ``[B]`` (``"correct"`` included)."""
        ...

    def sft_batch(self, key: Array, n: int) -> tuple[Array, Array]:
        """Supervised warm-start tokens ``[n, P + N]`` and loss mask ``[n, P + N]``."""
        ...

    def train_prompt_set(self, key: Array, n: int) -> tuple[Array, Meta]:
        """A fixed set of ``n`` *distinct* training prompts (all of them if ``n`` is 0 or at
        least their number), for experiments that train on one prompt set."""
        ...


def sampling_config(
    task: Task,
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    group_size: int = 1,
) -> SamplingConfig:
    """The one builder of sampler settings for a task: its generation budget, EOS and padding,
    with the given temperature / filtering and completions per prompt (temperature 0 =
    greedy, as the evaluators use)."""
    return SamplingConfig(
        max_new_tokens=task.max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        eos_id=task.tokenizer.eos_id,
        eos_ids=tuple(getattr(task.tokenizer, "eos_ids", ()))[1:],
        pad_id=task.tokenizer.pad_id,
        group_size=group_size,
    )


def prompt_mask_of(task: Task, prompts: Array) -> Array | None:
    """The prompt mask ``[n, P]`` (1 = real token) of a task's prompts, or ``None``.

    Tasks with fixed-width prompts (every synthetic task) return ``None``: every token is
    real and the sampler and scorer run their unpadded program. A task with
    ``padded_prompts = True`` (text tasks) left pads its prompts with the tokenizer's
    ``pad_id``; the leading run of ``pad_id`` of each row is its padding."""
    if not getattr(task, "padded_prompts", False):
        return None
    real = prompts != task.tokenizer.pad_id
    return (jnp.cumsum(real.astype(jnp.int32), axis=1) > 0).astype(jnp.int32)


# Task methods are jit-compiled with the task itself static (tasks hash by type and config):
# eager callers get one compiled program instead of dozens of op-by-op dispatches, and calls
# from inside another jit are simply inlined.
jit_method = partial(jax.jit, static_argnums=0)
jit_method_n = partial(jax.jit, static_argnums=(0, 2), static_argnames=("n",))


def digits_msb(x: Array, n: int) -> Array:
    """``[B, n]`` decimal digits of non-negative ints ``x[B]``, most significant first."""
    powers = 10 ** jnp.arange(n - 1, -1, -1, dtype=jnp.int32)
    return (x[:, None] // powers[None, :]) % 10


def num_digits(x: Array, max_digits: int) -> Array:
    """``[B]`` number of digits of ``x`` without leading zeros (0 has one digit)."""
    count = jnp.ones_like(x)
    for k in range(1, max_digits):
        count = count + (x >= 10**k).astype(x.dtype)
    return count


def number_tokens(x: Array, max_digits: int, width: int, tok: CharTokenizer) -> tuple[Array, Array]:
    """Canonical answer tokens: digits of ``x`` (no leading zeros), EOS, then padding.

    Returns:
      ``(tokens [B, width] int32, mask [B, width] int32)``, mask 1 on the digits and the EOS.
      If the answer does not fit, the row is truncated (and can never be matched).
    """
    nd = num_digits(x, max_digits)[:, None]
    digits = digits_msb(x, max_digits)
    t = jnp.arange(width, dtype=jnp.int32)[None, :]
    src = jnp.clip(max_digits - nd + t, 0, max_digits - 1)
    digit_tok = jnp.take_along_axis(digits, src, axis=1) + tok.digit0_id
    tokens = jnp.where(t < nd, digit_tok, jnp.where(t == nd, tok.eos_id, tok.pad_id))
    return tokens.astype(jnp.int32), (t <= nd).astype(jnp.int32)


def digit_columns(x: Array, n: int, tok: CharTokenizer) -> Array:
    """``[B, n]`` tokens of ``x`` written with exactly ``n`` digits (zero-padded)."""
    return (digits_msb(x, n) + tok.digit0_id).astype(jnp.int32)


def const_column(value: int, b: int) -> Array:
    """``[b, 1]`` int32 column of one token id."""
    return jnp.full((b, 1), value, jnp.int32)


def exact_match(
    completions: Array, completion_mask: Array, target: Array, target_mask: Array
) -> Array:
    """1.0 where the completion equals ``target`` on every target position (EOS included).

    The target's EOS makes the match exact: no extra tokens before EOS, no missing EOS.
    Tokens after the target's EOS are ignored. Returns ``[B]`` float32.
    """
    ok = (completions == target) & (completion_mask > 0)
    return jnp.all(ok | (target_mask == 0), axis=1).astype(jnp.float32)


def response_length(completions: Array, eos_id: int) -> tuple[Array, Array]:
    """``(length [B], has_eos [B] bool)``: tokens before the first EOS (all N if none)."""
    is_eos = completions == eos_id
    has_eos = jnp.any(is_eos, axis=1)
    first = jnp.argmax(is_eos, axis=1)
    return jnp.where(has_eos, first, completions.shape[1]).astype(jnp.int32), has_eos


def sft_from_target(prompts: Array, target: Array, target_mask: Array) -> tuple[Array, Array]:
    """``(tokens, loss_mask)`` of a warm-start batch (module docstring convention)."""
    tokens = jnp.concatenate([prompts, target], axis=1).astype(jnp.int32)
    loss_mask = jnp.concatenate([jnp.zeros_like(prompts), target_mask], axis=1).astype(jnp.int32)
    return tokens, loss_mask


class PairPoolMixin:
    """Shared accessors of tasks whose prompts come from a fixed pool of integer pairs.

    The subclass sets ``_train_pairs`` and ``_eval_pairs`` (``[n, 2]`` int32) and defines
    ``prompts_for(a, b) -> (prompts, meta)``.
    """

    _train_pairs: Array
    _eval_pairs: Array

    @jit_method
    def eval_set(self) -> tuple[Array, Meta]:
        """The fixed held-out set: every held-out pair once, in order."""
        return self.prompts_for(self._eval_pairs[:, 0], self._eval_pairs[:, 1])

    def train_prompt_set(self, key: Array, n: int) -> tuple[Array, Meta]:
        """``n`` distinct training prompts (a random subset of the pool chosen with ``key``; the
        whole pool in order if ``n`` is 0 or at least its size)."""
        pairs = np.asarray(self._train_pairs)
        if 0 < n < len(pairs):
            pairs = pairs[np.asarray(jax.random.permutation(key, len(pairs))[:n])]
        return self.prompts_for(jnp.asarray(pairs[:, 0]), jnp.asarray(pairs[:, 1]))

    @property
    def train_pairs(self) -> Array:
        """``[n_train, 2]`` int32 pairs of the training pool."""
        return self._train_pairs

    @property
    def eval_pairs(self) -> Array:
        """``[n_eval, 2]`` int32 held-out pairs."""
        return self._eval_pairs
