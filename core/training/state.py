"""Explicit training state and the optimizer.

A step is a pure function ``(TrainState, batch) -> (TrainState, metrics)``; nothing lives in
objects, so the same function runs on one device or, with shardings added, on a mesh.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from cliffjax.distributed.layout import Layout
from cliffjax.models.lora import trainable, with_trainable
from cliffjax.training.config import OptimConfig

Array = jax.Array
PyTree = Any


class TrainState(NamedTuple):
    """Everything a step reads and writes.

    Attributes:
      params: the policy parameters (a pytree of arrays).
      opt_state: the optax state of ``make_optimizer(...)`` over ``trainable(params)`` (all
        parameters, or only the LoRA adapters when there are any: ``cliffjax.models.lora``).
      step: ``int32[]`` optimizer steps taken in the current phase.
      key: PRNG key consumed by the loop (split once per step).
    """

    params: PyTree
    opt_state: PyTree
    step: Array
    key: Array


def learning_rate_schedule(cfg: OptimConfig, total_steps: int) -> optax.Schedule:
    """Linear warm-up ``0 -> lr`` over ``warmup_steps``, then constant or cosine to ``final_lr``.

    ``total_steps`` counts optimizer updates (for RL: steps x epochs x minibatches).
    """
    warmup = min(cfg.warmup_steps, max(total_steps - 1, 0))
    if cfg.schedule == "cosine":
        return optax.warmup_cosine_decay_schedule(
            init_value=0.0,
            peak_value=cfg.lr,
            warmup_steps=warmup,
            decay_steps=max(total_steps, warmup + 1),
            end_value=cfg.final_lr,
        )
    if warmup == 0:
        return optax.constant_schedule(cfg.lr)
    return optax.join_schedules(
        [optax.linear_schedule(0.0, cfg.lr, warmup), optax.constant_schedule(cfg.lr)], [warmup]
    )


def make_optimizer(cfg: OptimConfig, total_steps: int) -> optax.GradientTransformation:
    """``clip_by_global_norm`` (if ``max_grad_norm > 0``) followed by AdamW (or SGD) on the
    schedule."""
    parts = []
    if cfg.max_grad_norm > 0:
        parts.append(optax.clip_by_global_norm(cfg.max_grad_norm))
    if cfg.name == "sgd":
        parts.append(optax.sgd(learning_rate=learning_rate_schedule(cfg, total_steps)))
        return optax.chain(*parts)
    parts.append(
        optax.adamw(
            learning_rate=learning_rate_schedule(cfg, total_steps),
            b1=cfg.b1,
            b2=cfg.b2,
            eps=cfg.eps,
            eps_root=cfg.eps_root,
            weight_decay=cfg.weight_decay,
        )
    )
    return optax.chain(*parts)


def optimizer_step(
    tx: optax.GradientTransformation, params: PyTree, opt_state: PyTree, grads: PyTree
) -> tuple[PyTree, PyTree]:
    """One optimizer update of ``trainable(params)`` by ``grads`` (shaped like it); returns
    ``(new params, new opt_state)``. Without adapters this is ``tx.update`` +
    ``optax.apply_updates`` on the whole tree; with LoRA adapters the base weights are
    returned untouched."""
    train = trainable(params)
    updates, opt_state = tx.update(grads, opt_state, train)
    return with_trainable(params, optax.apply_updates(train, updates)), opt_state


def init_state(
    params: PyTree, tx: optax.GradientTransformation, key: Array, layout: Layout | None = None
) -> TrainState:
    """A fresh state at step 0 (the optimizer state is built with ``jax.jit(tx.init)``).

    When the parameters live on one device, every leaf is committed there, so a fresh state and one restored from a checkpoint (orbax returns committed
    arrays) have the same jit signature and share compilations.
    """
    if layout is not None:
        # On a mesh: the optimizer state is built sharded like the parameters (a plain
        # jax.jit(tx.init) would replicate it) and every leaf, step and key included, is
        # committed to the mesh, so the first step compiles only once.
        opt_state = layout.init_opt_state(tx, trainable(params))
        return layout.place(TrainState(params, opt_state, jnp.zeros((), jnp.int32), key))
    state = TrainState(
        params=params,
        opt_state=jax.jit(tx.init)(trainable(params)),
        step=jnp.zeros((), jnp.int32),
        key=key,
    )
    sharding = getattr(jax.tree.leaves(params)[0], "sharding", None)
    if isinstance(sharding, jax.sharding.SingleDeviceSharding):
        state = jax.device_put(state, sharding)
    return state


def commit_to_device(tree: PyTree, device: jax.Device | None = None) -> PyTree:
    """``jax.device_put`` every leaf onto ``device`` (default: the first device), committed.

    Checkpoint restores return committed arrays; committing fresh ones as well keeps a resumed
    run on the compiled programs of an uninterrupted one.
    """
    return jax.device_put(tree, device or jax.devices()[0])


def abstract_state(state: TrainState) -> TrainState:
    """``jax.ShapeDtypeStruct`` skeleton of ``state`` (the restore target for orbax)."""
    return jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)),
        state,
    )
