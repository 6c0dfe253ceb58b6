"""Supervised warm start: one step of next-token cross-entropy, and its two drivers.

    step = make_sft_step(graphdef, optim_cfg, total_steps)      # jit'd sft_update
    state, metrics = step(state, tokens, loss_mask)
    fn = make_sft_step_fn(graphdef, task, cfg, data_key)        # driver 1: fn(state, i)
    train = make_sft_train(graphdef, task, cfg)                 # driver 2: lax.scan, pure
    params, metrics = train(params, data_key)

Both drivers train step ``i`` on ``task.sft_batch(fold_in(data_key, i), batch_size)`` with
the same update, so they give the same parameters.

Loss ``L = -(1/|M|) sum_{(b,i) in M} log pi(x_{b,i} | x_{b,<i})`` over the task's loss mask
``M`` (the answer tokens). The teacher data and its flaws come from the task
(``Task.sft_batch``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from cliffjax.distributed.layout import Layout, sharded_partial
from cliffjax.models.lora import trainable, trainable_value_and_grad
from cliffjax.models.policy import apply
from cliffjax.training.config import OptimConfig, SFTConfig
from cliffjax.training.metrics import to_host
from cliffjax.training.state import TrainState, make_optimizer, optimizer_step

Array = jax.Array


def sequence_nll(
    graphdef: Any, params: Any, tokens: Array, loss_mask: Array, pad_id: int | None = None
) -> tuple[Array, Array, Array]:
    """Supervised next-token loss: ``(nll_sum, n_tokens, n_correct)`` over ``loss_mask``.

    ``tokens`` ``[B, L]`` int32; ``loss_mask`` ``[B, L]`` marks the tokens to predict (a token at
    position ``i`` is predicted from ``tokens[:, :i]``, so position 0 never counts).
    ``nll_sum = -sum_{b,i>0} mask[b,i] log pi(tokens[b,i] | tokens[b,<i])``; the mean loss is
    ``nll_sum / n_tokens`` (a (sum, denominator) pair, like the objectives).
    With ``pad_id`` (tasks with left-padded prompts) the leading run of ``pad_id`` of each row
    is padding: negative positions, never attended to, so a row trains as it would alone.
    """
    inputs = tokens[:, :-1]
    targets = tokens[:, 1:]
    mask = loss_mask[:, 1:].astype(jnp.float32)
    if pad_id is None:
        positions = jnp.broadcast_to(jnp.arange(inputs.shape[1], dtype=jnp.int32), inputs.shape)
    else:
        count = jnp.cumsum((inputs != pad_id).astype(jnp.int32), axis=1)
        positions = jnp.where(count > 0, count - 1, -1).astype(jnp.int32)
    logits, _ = apply(graphdef, params, inputs, positions)
    logits = logits.astype(jnp.float32)
    logp = jax.nn.log_softmax(logits, axis=-1)
    picked = jnp.take_along_axis(logp, targets[..., None].astype(jnp.int32), axis=-1)[..., 0]
    correct = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32)
    return -jnp.sum(picked * mask), jnp.sum(mask), jnp.sum(correct * mask)


def sft_update(
    state: TrainState,
    tokens: Array,
    loss_mask: Array,
    *,
    graphdef: Any,
    optim: OptimConfig,
    total_steps: int,
    pad_id: int | None = None,
) -> tuple[TrainState, dict[str, Array]]:
    tx = make_optimizer(optim, total_steps)

    def loss_fn(params):
        nll, n, correct = sequence_nll(graphdef, params, tokens, loss_mask, pad_id)
        n = jnp.maximum(n, 1.0)
        return nll / n, correct / n

    (loss, acc), grads = trainable_value_and_grad(loss_fn, state.params, has_aux=True)
    params, opt_state = optimizer_step(tx, state.params, state.opt_state, grads)
    metrics = {"loss": loss, "token_acc": acc, "grad_norm": optax.tree.norm(grads)}
    return state._replace(params=params, opt_state=opt_state, step=state.step + 1), metrics


_sft_step = jax.jit(
    sft_update, static_argnames=("graphdef", "optim", "total_steps", "pad_id"), donate_argnums=0
)


def padding_id(task: Any) -> int | None:
    """The id whose leading run is padding in ``task``'s data (``None``: fixed-width prompts)."""
    return task.tokenizer.pad_id if getattr(task, "padded_prompts", False) else None


def make_sft_step(
    graphdef: Any,
    optim: OptimConfig,
    total_steps: int,
    layout: Layout | None = None,
    pad_id: int | None = None,
) -> Callable[[TrainState, Array, Array], tuple[TrainState, dict[str, Array]]]:
    """A jit'd ``step(state, tokens[B,L], loss_mask[B,L]) -> (state, metrics)``.

    The optimizer is ``make_optimizer(optim, total_steps)`` (build the state with it). Metrics:
    ``loss`` (mean NLL), ``token_acc`` (teacher-forced argmax accuracy on masked tokens),
    ``grad_norm`` (before clipping). ``state.key`` is not consumed (the data comes in). The
    state is donated. Equal arguments share one compilation.
    """
    return sharded_partial(
        _sft_step,
        layout,
        ("model", "batch", "batch"),
        ("model", "replicated"),
        donate_argnums=(0,),
        graphdef=graphdef,
        optim=optim,
        total_steps=total_steps,
        pad_id=pad_id,
    )


@functools.partial(jax.jit, static_argnames=("task", "n"))
def _sft_batch(key: Array, *, task: Any, n: int) -> tuple[Array, Array]:
    return task.sft_batch(key, n)


def make_sft_step_fn(
    graphdef: Any, task: Any, cfg: SFTConfig, data_key: Array, layout: Layout | None = None
) -> Callable[[TrainState, int], tuple[TrainState, dict[str, float]]]:
    """Host step ``fn(state, i) -> (state, host metrics)`` for :func:`cliffjax.training.loop.run_phase`.

    Step ``i`` trains on ``task.sft_batch(fold_in(data_key, i), cfg.batch_size)``, so the data
    depends only on the step index (resuming replays the same batches). The state must be built
    with ``sft_optimizer(cfg)``.
    """
    step = make_sft_step(
        graphdef, cfg.optim, max(cfg.steps, 1), layout=layout, pad_id=padding_id(task)
    )

    def fn(state: TrainState, i: int):
        tokens, loss_mask = sharded_partial(
            _sft_batch, layout, ("replicated",), "batch", task=task, n=cfg.batch_size
        )(jax.random.fold_in(data_key, i))
        state, metrics = step(state, tokens, loss_mask)
        return state, to_host(metrics)

    return fn


def make_sft_train(
    graphdef: Any, task: Any, cfg: SFTConfig
) -> Callable[[Any, Array], tuple[Any, dict[str, Array]]]:
    """Driver 2: ``train(params, data_key) -> (params, metrics [steps])``, one ``lax.scan``.

    The same steps as :func:`make_sft_step_fn` (same data keys, same update), as one pure
    function: jit it, or call it inside a larger program. With ``cfg.steps == 0`` the
    parameters come back unchanged and the metrics are empty.
    """
    total = max(cfg.steps, 1)
    tx = sft_optimizer(cfg)

    def train(params: Any, data_key: Array):
        if cfg.steps == 0:
            return params, {}
        state = TrainState(params, tx.init(trainable(params)), jnp.zeros((), jnp.int32), data_key)

        def body(state, i):
            tokens, loss_mask = task.sft_batch(jax.random.fold_in(data_key, i), cfg.batch_size)
            return sft_update(
                state,
                tokens,
                loss_mask,
                graphdef=graphdef,
                optim=cfg.optim,
                total_steps=total,
                pad_id=padding_id(task),
            )

        state, metrics = jax.lax.scan(body, state, jnp.arange(cfg.steps, dtype=jnp.int32))
        return state.params, metrics

    return train


def sft_optimizer(cfg: SFTConfig) -> optax.GradientTransformation:
    """The warm start's optimizer (to build the initial ``TrainState``)."""
    return make_optimizer(cfg.optim, max(cfg.steps, 1))
