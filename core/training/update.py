"""The update phase of an RL step: ``epochs × minibatches`` optimizer steps on one rollout.

    state, metrics = update_phase(state, batch, program=p)

The ``B`` rows are split into ``minibatches`` minibatches per epoch from a fresh permutation
(reshaped, so shapes are static; the permutation key is split off ``state.key``). Each
minibatch is one optimizer step on

    L(θ) = loss_sum(θ) / D  −  c_H · Σ_t m_t H_t(θ) / Σ_t m_t

where ``(loss_sum, D)`` is the objective's ``spec.loss`` (its KL term included when its
coefficient is set), ``H_t`` the policy's token entropy and ``c_H = rl.entropy_coef``. The
denominators depend on the masks only, so they are computed once for the whole minibatch and
``micro_batches > 1`` chunks add their gradients without any rescaling: the accumulated
gradient equals the whole-minibatch gradient (up to float summation order).

With LoRA adapters in the parameters (``cliffjax.models.lora``) the gradient, the optimizer
and the update cover the adapters only; the base weights pass through unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from cliffjax.distributed.layout import Layout, sharded_partial
from cliffjax.models.lora import trainable, trainable_value_and_grad
from cliffjax.objectives import PolicyBatch
from cliffjax.sampling import score_with_entropy
from cliffjax.tasks.base import prompt_mask_of
from cliffjax.training.program import RLProgram
from cliffjax.training.rollout import Rollout
from cliffjax.training.state import TrainState, optimizer_step

Array = jax.Array
PyTree = Any


def _policy_batch(logp: Array, b: Rollout) -> PolicyBatch:
    return PolicyBatch(
        logp=logp,
        logp_old=b.logp_old,
        mask=b.mask,
        advantages=b.advantages,
        logp_ref=b.logp_ref,
        rewards=b.rewards,
    )


def _minibatch_grads(params: PyTree, mbatch: Rollout, program: RLProgram):
    """``(grads, loss, entropy, aux)`` of one minibatch, micro-batched when asked."""
    spec, cfg, rl = program.spec, program.obj_cfg, program.rl
    # The objective's denominator and the token count depend on the masks only.
    _, denom, _ = spec.loss(_policy_batch(mbatch.logp_old, mbatch), cfg)
    denom = jnp.maximum(jax.lax.stop_gradient(denom), 1e-8)  # all-masked minibatch: loss 0
    n_tok = jnp.maximum(jnp.sum(mbatch.mask), 1.0)
    c_h = rl.entropy_coef

    def micro_terms(prm: PyTree, micro: Rollout):
        def total(p):
            pmask = prompt_mask_of(program.task, micro.prompts)
            logp, ent = score_with_entropy(
                program.graphdef, p, micro.prompts, micro.completions, pmask
            )
            loss_sum, _, aux = spec.loss(_policy_batch(logp, micro), cfg, with_aux=rl.aux_metrics)
            ent_sum = jnp.sum(ent * micro.mask)
            value = loss_sum / denom
            if c_h:
                value = value - c_h * ent_sum / n_tok
            return value, (loss_sum, jax.lax.stop_gradient(ent_sum), aux)

        (_, (loss_sum, ent_sum, aux)), grads = trainable_value_and_grad(total, prm, has_aux=True)
        return grads, loss_sum, ent_sum, aux

    n_micro = rl.micro_batches
    if n_micro == 1:
        grads, loss_sum, ent_sum, aux = micro_terms(params, mbatch)
    else:
        size = mbatch.mask.shape[0] // n_micro
        chunks = jax.tree.map(lambda x: x.reshape(n_micro, size, *x.shape[1:]), mbatch)

        def body(carry, micro):
            g_acc, s_acc, e_acc = carry
            g, s, e, aux = micro_terms(params, micro)
            return (jax.tree.map(jnp.add, g_acc, g), s_acc + s, e_acc + e), aux

        zeros = jax.tree.map(jnp.zeros_like, trainable(params))
        init = (zeros, jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32))
        (grads, loss_sum, ent_sum), auxs = jax.lax.scan(body, init, chunks)
        aux = jax.tree.map(jnp.mean, auxs)
    return grads, loss_sum / denom, ent_sum / n_tok, aux


def update_phase(
    state: TrainState, batch: Rollout, *, program: RLProgram
) -> tuple[TrainState, dict[str, Array]]:
    """``epochs × minibatches`` optimizer steps on ``batch`` (module docstring); pure.

    Returns the new state (``step + 1``, key split once) and metrics, means over the optimizer
    steps: ``loss`` (the objective's), ``entropy`` (per token, nats), ``grad_norm`` (before
    clipping) and every aux scalar of the objective (none when ``rl.aux_metrics`` is False);
    plus ``grad_norm_max`` and ``loss_first`` / ``loss_last`` (first and last optimizer step).
    """
    rl = program.rl
    tx = program.optimizer()
    b = program.batch_size
    n_mb = rl.minibatches
    key, k_perm = jax.random.split(state.key)
    perms = jax.vmap(lambda k: jax.random.permutation(k, b))(
        jax.random.split(k_perm, rl.epochs)
    ).reshape(rl.epochs * n_mb, b // n_mb)

    def body(carry, idx):
        params, opt_state = carry
        mbatch = jax.tree.map(lambda x: x[idx], batch)
        grads, loss, entropy, aux = _minibatch_grads(params, mbatch, program)
        params, opt_state = optimizer_step(tx, params, opt_state, grads)
        metrics = dict(aux)
        metrics["loss"] = loss
        metrics["entropy"] = entropy
        metrics["grad_norm"] = optax.tree.norm(grads)
        return (params, opt_state), metrics

    (params, opt_state), per_step = jax.lax.scan(body, (state.params, state.opt_state), perms)
    metrics = {k: jnp.mean(v) for k, v in per_step.items()}
    metrics["grad_norm_max"] = jnp.max(per_step["grad_norm"])
    metrics["loss_first"] = per_step["loss"][0]
    metrics["loss_last"] = per_step["loss"][-1]
    return TrainState(params, opt_state, state.step + 1, key), metrics


_update_jit = jax.jit(update_phase, static_argnames=("program",), donate_argnums=0)


def make_update_phase(
    program: RLProgram, layout: Layout | None = None
) -> Callable[[TrainState, Rollout], tuple[TrainState, dict[str, Array]]]:
    """A jit'd ``update(state, batch) -> (state, metrics)``; the state is donated. Build the
    state with ``program.optimizer()``."""
    return sharded_partial(
        _update_jit,
        layout,
        ("model", "batch"),
        ("model", "replicated"),
        donate_argnums=(0,),
        program=program,
    )
