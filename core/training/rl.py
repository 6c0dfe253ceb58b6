"""One RL step, and the two drivers that run it.

    step:      rl_step(state, key, reference, shift, replay, program=p) -> (state, metrics, record)
               = rollout_phase (cliffjax.training.rollout) + update_phase (cliffjax.training.update)
    driver 1:  make_rl_step_fn(p, reference, data_key)  -> fn(state, i)      Python loop, jit per
               phase; the main job's loop adds logging, checkpoints, resume and the NaN guard
    driver 2:  make_rl_train(p)  -> train(params, key, reference, shift, replays)   lax.scan over
               steps, pure: jit it, vmap it over seeds and reward shifts (the policy-cliff sweeps)

Both drivers draw the same keys: with ``data_key, state_key = jax.random.split(key)``, step
``i`` rolls out with ``fold_in(data_key, i)`` and the update splits ``state.key`` (initially
``state_key``) once per step, so the main job's trainer and the in-graph driver give the same
parameters for the same seed and settings (tested), and a resumed run replays the same steps.

Every option of :class:`~cliffjax.training.config.RLConfig` (entropy bonus, micro-batches,
dynamic sampling, overlong shaping, epochs × minibatches), the objective's KL term, reward
shifts and replayed rollouts work in both drivers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from cliffjax.distributed.layout import Layout
from cliffjax.models.lora import has_adapters, trainable
from cliffjax.training.metrics import to_host
from cliffjax.training.program import RLProgram
from cliffjax.training.rollout import (
    RolloutRecord,
    make_rollout_phase,
    rollout_phase,
)
from cliffjax.training.state import TrainState
from cliffjax.training.update import make_update_phase, update_phase

Array = jax.Array
PyTree = Any


def rl_step(
    state: TrainState,
    key: Array,
    reference: PyTree | None = None,
    shift: Any = None,
    replay: RolloutRecord | None = None,
    *,
    program: RLProgram,
) -> tuple[TrainState, dict[str, Array], RolloutRecord]:
    """One RL step: rollout with ``key`` (or ``replay``), then the update; pure.

    Returns ``(new state, metrics, record)``: the rollout's and the update's metrics in one
    dict (see :func:`~cliffjax.training.rollout.rollout_phase` and
    :func:`~cliffjax.training.update.update_phase`) and this step's rollout record.
    """
    batch, record, metrics = rollout_phase(
        state.params, key, reference, shift, replay, program=program
    )
    state, update_metrics = update_phase(state, batch, program=program)
    return state, {**metrics, **update_metrics}, record


def make_rl_step_fn(
    program: RLProgram,
    reference: PyTree | None,
    data_key: Array,
    *,
    kl_every: int = 0,
    nan_at_step: int = -1,
    shift: Any = None,
    replays: RolloutRecord | None = None,
    layout: Layout | None = None,
) -> Callable[[TrainState, int], tuple[TrainState, dict[str, float]]]:
    """Driver 1: the host step ``fn(state, i) -> (state, host metrics)`` of the main job.

    Step ``i`` rolls out with ``fold_in(data_key, i)`` (or trains on ``replays[i]``, records
    stacked ``[steps, ...]``), then updates; the two phases are separate jit'd programs so
    their times are measured. The reference is scored every step when the objective has a
    KL term, and every ``kl_every`` steps for the ``kl_ref`` metric otherwise.
    ``nan_at_step`` (a test hook) multiplies that step's advantages by NaN. Timings:
    ``rollout_time``, ``update_time`` (seconds), ``tokens_per_s`` (completion tokens per second
    of the whole step), ``sample_tokens_per_s`` (per second of rollout) and
    ``update_tokens_per_s`` (``program.update_tokens()`` per second of update).
    """
    rollout = make_rollout_phase(program, layout)
    rollout_kl = make_rollout_phase(program, layout, score_reference=True)
    update = make_update_phase(program, layout)
    update_tokens = program.update_tokens()

    def fn(state: TrainState, i: int):
        t0 = time.perf_counter()
        with_kl = not program.needs_reference and kl_every > 0 and i % kl_every == 0
        replay = None if replays is None else jax.tree.map(lambda x: x[i], replays)
        batch, _, metrics = (rollout_kl if with_kl else rollout)(
            state.params, jax.random.fold_in(data_key, i), reference, shift, replay
        )
        if i == nan_at_step:
            batch = batch._replace(advantages=batch.advantages * jnp.nan)
        jax.block_until_ready(batch)
        t1 = time.perf_counter()
        state, update_metrics = update(state, batch)
        host = to_host({**metrics, **update_metrics})
        t2 = time.perf_counter()
        host["rollout_time"] = t1 - t0
        host["update_time"] = t2 - t1
        host["tokens_per_s"] = host["gen_tokens"] / max(t2 - t0, 1e-9)
        host["sample_tokens_per_s"] = host["gen_tokens"] / max(t1 - t0, 1e-9)
        host["update_tokens_per_s"] = update_tokens / max(t2 - t1, 1e-9)
        return state, host

    return fn


def make_rl_train(
    program: RLProgram, *, record: bool = False
) -> Callable[..., tuple[PyTree, dict[str, Array], RolloutRecord | None]]:
    """Driver 2: ``train(params, key, reference=None, shift=None, replays=None)``.

    Returns ``(final params, metrics, records)``: ``metrics`` are ``[steps]`` arrays of every
    step metric (the rollout's, the update's, the objective's aux), ``records`` the stacked
    ``[steps, ...]`` :class:`RolloutRecord` when ``record=True`` (else ``None``). The RL loop is
    one ``lax.scan`` over ``program.rl.steps`` steps; the function is pure, so
    ``jax.jit(jax.vmap(train, in_axes=(None, 0, None, 0, None)))`` runs many seeds and reward
    shifts in one program. ``reference`` defaults to ``params`` (the starting policy) when
    the objective has a KL term. ``replays`` (stacked records) replaces sampling step by step.
    """
    tx = program.optimizer()
    n_steps = program.rl.steps

    def train(
        params: PyTree,
        key: Array,
        reference: PyTree | None = None,
        shift: Any = None,
        replays: RolloutRecord | None = None,
    ):
        if program.needs_reference and reference is None and not has_adapters(params):
            reference = params  # (with LoRA the rollout uses params with adapters off)
        data_key, state_key = jax.random.split(key)
        state = TrainState(params, tx.init(trainable(params)), jnp.zeros((), jnp.int32), state_key)

        def body(state, inp):
            i, replay = inp
            state, metrics, rec = rl_step(
                state, jax.random.fold_in(data_key, i), reference, shift, replay, program=program
            )
            return state, (metrics, rec if record else None)

        steps = jnp.arange(n_steps, dtype=jnp.int32)
        state, (metrics, records) = jax.lax.scan(body, state, (steps, replays))
        return state.params, metrics, records

    return train
