"""Tasks built from tasks: a fixed training prompt set, and a reward computed by Python.

Both wrap any ``Task`` and change one thing, so the trainer sees an ordinary task:

* :class:`FixedPrompts` trains on a fixed prompt set (the policy-cliff experiments compare
  runs on the same prompts) and tags every row with ``meta["prompt_idx"]``, its index in the
  set, which per-prompt reward perturbations read.
* :class:`HostReward` replaces the task's JAX reward by a Python function on decoded text,
  called from inside the jit'd rollout with ``jax.pure_callback``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from cliffjax.tasks.base import Meta, Task

Array = jax.Array


class _Wrapper:
    """Copies the wrapped task's static attributes and delegates what a wrapper keeps."""

    def __init__(self, task: Task) -> None:
        self.base = task
        self.name = task.name
        self.tokenizer = task.tokenizer
        self.prompt_len = task.prompt_len
        self.max_new_tokens = task.max_new_tokens
        self.answer_digits = task.answer_digits
        self.has_flawed_teacher = task.has_flawed_teacher
        self.padded_prompts = getattr(task, "padded_prompts", False)

    def eval_set(self) -> tuple[Array, Meta]:
        return self.base.eval_set()

    def sft_batch(self, key: Array, n: int) -> tuple[Array, Array]:
        return self.base.sft_batch(key, n)


class FixedPrompts(_Wrapper):
    """``task`` with its training prompts drawn from a fixed set ``prompts [M, P]``.

    ``train_prompts(key, n)`` returns all ``M`` prompts in order when ``n == M`` and ``n``
    distinct ones (a permutation prefix chosen by ``key``) when ``n < M``; ``meta`` gains
    ``"prompt_idx"`` (int32 ``[n]``). Everything else is the wrapped task's. The set is baked
    into compiled programs as a constant, and the wrapper hashes by identity (one wrapper,
    one set of compilations).
    """

    def __init__(self, task: Task, prompts: Array, meta: Meta) -> None:
        if prompts.ndim != 2 or prompts.shape[1] != task.prompt_len:
            raise ValueError(
                f"FixedPrompts.prompts must be [M, {task.prompt_len}], got {prompts.shape}"
            )
        super().__init__(task)
        self.prompts = jnp.asarray(prompts, jnp.int32)
        self.meta = dict(meta)

    @property
    def size(self) -> int:
        """``M``, the number of prompts in the set."""
        return int(self.prompts.shape[0])

    def train_prompts(self, key: Array, n: int) -> tuple[Array, Meta]:
        """``n <= M`` distinct prompts of the set and their meta (with ``prompt_idx``)."""
        m = self.size
        if n > m:
            raise ValueError(f"asked for {n} prompts per step from a fixed set of {m} prompts")
        if n == m:
            idx = jnp.arange(m, dtype=jnp.int32)
        else:
            idx = jax.random.permutation(key, m)[:n].astype(jnp.int32)
        meta = {k: v[idx] for k, v in self.meta.items()}
        meta["prompt_idx"] = idx
        return self.prompts[idx], meta

    def train_prompt_set(self, key: Array, n: int) -> tuple[Array, Meta]:
        """The fixed set itself (``n`` first prompts when ``0 < n < M``)."""
        del key
        k = self.size if n <= 0 else min(n, self.size)
        return self.prompts[:k], {kk: v[:k] for kk, v in self.meta.items()}

    def reward(
        self, completions: Array, completion_mask: Array, meta: Meta
    ) -> tuple[Array, dict[str, Array]]:
        base_meta = {k: v for k, v in meta.items() if k != "prompt_idx"}
        return self.base.reward(completions, completion_mask, base_meta)


HostRewardFn = Callable[[list[str], np.ndarray, Mapping[str, np.ndarray]], Mapping[str, Any]]


class HostReward(_Wrapper):
    """``task`` with its reward computed on the host by ``fn`` on decoded completions.

    ``fn(texts, finished, meta) -> {component: [B] numbers}``: ``texts`` are the completions
    decoded up to their first EOS, ``finished[B]`` (bool) says which ones emitted an EOS,
    ``meta`` holds numpy copies of the prompts' meta. The reward is
    ``Σ_k weights[k] · component_k`` over ``components`` (``"correct"`` must be one of them:
    evaluation reports it as accuracy).

    Inside a jit'd rollout the call goes through ``jax.pure_callback``: the completions
    (``B × N`` int32) are copied to the host, ``fn`` runs in Python, ``B`` floats per component
    come back. Under ``jax.vmap`` (several runs in one program) the callback runs once per run
    (``vmap_method="sequential"``). A value that is not finite stops the run with an error
    naming the component and the completion.
    """

    def __init__(
        self,
        task: Task,
        fn: HostRewardFn,
        components: tuple[str, ...] = ("correct",),
        weights: tuple[float, ...] | None = None,
    ) -> None:
        if "correct" not in components:
            raise ValueError(f"HostReward.components must include 'correct', got {components}")
        weights = tuple(1.0 for _ in components) if weights is None else tuple(weights)
        if len(weights) != len(components):
            raise ValueError(
                f"HostReward.weights must give one weight per component {components}, got {weights}"
            )
        super().__init__(task)
        self.fn = fn
        self.components = tuple(components)
        self.weights = weights

    def train_prompts(self, key: Array, n: int) -> tuple[Array, Meta]:
        return self.base.train_prompts(key, n)

    def train_prompt_set(self, key: Array, n: int) -> tuple[Array, Meta]:
        return self.base.train_prompt_set(key, n)

    def _host(self, completions: np.ndarray, meta: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        tok = self.tokenizer
        completions = np.asarray(completions)
        texts = tok.decode_batch(completions)
        finished = np.isin(completions, np.asarray(tok.eos_ids)).any(axis=1)
        out = self.fn(texts, finished, {k: np.asarray(v) for k, v in meta.items()})
        values = {}
        for name in self.components:
            if name not in out:
                raise ValueError(f"host reward returned no component {name!r} (got {sorted(out)})")
            v = np.asarray(out[name], np.float32).reshape(-1)
            if v.shape != (completions.shape[0],):
                raise ValueError(
                    f"host reward component {name!r} has shape {v.shape}, expected "
                    f"({completions.shape[0]},)"
                )
            bad = np.flatnonzero(~np.isfinite(v))
            if bad.size:
                i = int(bad[0])
                raise FloatingPointError(
                    f"host reward component {name!r} is {v[i]} for completion {texts[i]!r}"
                )
            values[name] = v
        return values

    def reward(
        self, completions: Array, completion_mask: Array, meta: Meta
    ) -> tuple[Array, dict[str, Array]]:
        del completion_mask  # the text up to EOS is what the function sees
        b = completions.shape[0]
        shapes = {name: jax.ShapeDtypeStruct((b,), jnp.float32) for name in self.components}
        comps = jax.pure_callback(
            self._host, shapes, completions, dict(meta), vmap_method="sequential"
        )
        reward = sum(w * comps[name] for w, name in zip(self.weights, self.components))
        return jnp.asarray(reward, jnp.float32), comps
