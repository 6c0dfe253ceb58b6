"""The two phases of the RL step and the preference step on a tiny policy: every objective
updates, micro-batch accumulation is exact (with the entropy bonus too), dynamic sampling keeps
informative groups. Fixtures (tiny model, 1-digit addition) in conftest.py; batches are
synthetic where a random policy would give all-zero rewards.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cliffjax.objectives import PolicyBatch, get_objective, list_objectives
from cliffjax.sampling import score
from cliffjax.training.config import OptimConfig, PreferenceConfig, RLConfig
from cliffjax.training.preference import (
    make_dataset_pairs,
    make_preference_update,
    preference_optimizer,
)
from cliffjax.training.program import RLProgram
from cliffjax.training.rollout import Rollout, make_rollout_phase
from cliffjax.training.state import init_state
from cliffjax.training.update import make_update_phase

P, G = 4, 4
RL = RLConfig(
    prompts_per_step=P,
    group_size=G,
    epochs=2,
    minibatches=2,
    optim=OptimConfig(lr=1e-2, warmup_steps=0, max_grad_norm=1.0),
)
POLICY_OBJECTIVES = [n for n in list_objectives() if get_objective(n).kind == "policy"]
PREFERENCE_OBJECTIVES = [n for n in list_objectives() if get_objective(n).kind == "preference"]


def _program(policy, task, name="grpo", rl=RL, **cfg):
    spec = get_objective(name)
    obj_cfg = dataclasses.replace(spec.default_config, **cfg)
    return RLProgram(policy.graphdef, task, spec, obj_cfg, rl)


def _copy(tree):
    return jax.tree.map(jnp.copy, tree)


def _changed(new, old):
    return sum(
        float(jnp.sum(jnp.abs(a - b))) for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(old))
    )


@pytest.fixture(scope="module")
def rollout_batch(task, policy):
    """A real rollout with synthetic +-1 advantages and 0/1 rewards (a random policy scores 0);
    the reference (= the policy) is scored for the ``kl_ref`` metric and kept in the batch."""
    program = _program(policy, task)  # GRPO: beta = 0.04, so the reference is scored
    rollout = make_rollout_phase(program)
    batch, record, metrics = rollout(
        policy.params, jax.random.PRNGKey(1), policy.params, None, None
    )
    signs = jnp.where(jnp.arange(P * G) % 2 == 0, 1.0, -1.0)
    batch = batch._replace(advantages=signs, rewards=(signs > 0).astype(jnp.float32))
    return batch, metrics, record


def test_rollout_shapes_and_old_logp(task, policy, rollout_batch):
    batch, metrics, record = rollout_batch
    n = task.max_new_tokens
    assert isinstance(batch, Rollout)
    assert batch.prompts.shape == (P * G, task.prompt_len)
    assert batch.completions.shape == batch.mask.shape == batch.logp_old.shape == (P * G, n)
    # groups are contiguous: the G copies of a prompt are adjacent
    np.testing.assert_array_equal(batch.prompts[0], batch.prompts[G - 1])
    # at temperature 1 the sampler's log-probs are the policy's (teacher-forced re-score)
    rescored = score(policy.graphdef, policy.params, batch.prompts, batch.completions)
    m = np.asarray(batch.mask)
    np.testing.assert_allclose(np.asarray(batch.logp_old) * m, np.asarray(rescored) * m, atol=1e-5)
    # reference == policy here, so KL(pi_old || pi_ref) is ~0
    assert abs(float(metrics["kl_ref"])) < 1e-5
    np.testing.assert_allclose(np.asarray(batch.logp_ref) * m, np.asarray(rescored) * m, atol=1e-5)
    # the record holds what was sampled (replayable)
    np.testing.assert_array_equal(np.asarray(record.completions), np.asarray(batch.completions))
    np.testing.assert_array_equal(np.asarray(record.delta), 0.0)
    assert 0 <= float(metrics["reward_mean"]) <= 1


@functools.partial(jax.jit, static_argnames=("graphdef", "names"))
def _one_step_per_objective(params, batch, *, graphdef, names):
    """One optimizer step per objective, all in one program: the policy's forward pass and
    its backward (vmapped over the objectives' log-prob cotangents) are compiled once, the
    objectives' losses on top of them. Returns per objective: loss, gradient norm, the aux
    ratio extremes, and the L1 change of the parameters after one Adam step."""
    logp, vjp = jax.vjp(lambda p: score(graphdef, p, batch.prompts, batch.completions), params)
    losses, cotangents, ratio_max, ratio_min = [], [], [], []
    for name in names:
        spec = get_objective(name)
        with_kl = spec.kl_coef(spec.default_config) > 0

        def loss(lp, spec=spec, with_kl=with_kl):
            pb = PolicyBatch(
                logp=lp,
                logp_old=batch.logp_old,
                mask=batch.mask,
                advantages=batch.advantages,
                logp_ref=batch.logp_ref if with_kl else None,
                rewards=batch.rewards,
            )
            loss_sum, denom, aux = spec.loss(pb, spec.default_config)
            return loss_sum / denom, aux

        (value, aux), g = jax.value_and_grad(loss, has_aux=True)(logp)
        losses.append(value)
        cotangents.append(g)
        ratio_max.append(aux["ratio_max"])
        ratio_min.append(aux["ratio_min"])
    (grads,) = jax.vmap(vjp)(jnp.stack(cotangents))
    tx = optax.adamw(1e-2)

    def adam_step(g):
        updates, _ = tx.update(g, tx.init(params), params)
        new = optax.apply_updates(params, updates)
        return sum(
            jnp.sum(jnp.abs(a - b)) for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(params))
        )

    return {
        "loss": jnp.stack(losses),
        "grad_norm": jax.vmap(optax.tree.norm)(grads),
        "ratio_max": jnp.stack(ratio_max),
        "ratio_min": jnp.stack(ratio_min),
        "param_change": jax.vmap(adam_step)(grads),
    }


def test_every_policy_objective_takes_a_step(policy, rollout_batch):
    """Every registered policy objective gives a finite loss and a non-zero gradient through the
    policy, and one optimizer step changes the parameters. ``logp_old`` is shifted so that the
    ratios are != 1 and the clips / gates are active on some tokens."""
    batch = rollout_batch[0]
    shift = 0.3 * jnp.where(jnp.arange(batch.mask.size).reshape(batch.mask.shape) % 3 == 0, 1, -1)
    batch = batch._replace(logp_old=batch.logp_old + shift)
    out = jax.device_get(
        _one_step_per_objective(
            policy.params, batch, graphdef=policy.graphdef, names=tuple(POLICY_OBJECTIVES)
        )
    )
    for i, name in enumerate(POLICY_OBJECTIVES):
        assert np.isfinite(out["loss"][i]), name
        assert out["grad_norm"][i] > 0, name
        assert out["param_change"][i] > 0, name
        assert out["ratio_max"][i] > 1.0 and out["ratio_min"][i] < 1.0, name


@pytest.mark.parametrize("entropy_coef", [0.0, 0.1])
def test_update_runs_epochs_of_minibatches_and_accumulates_exactly(
    task, policy, rollout_batch, entropy_coef
):
    """The update phase (2 epochs x 2 minibatches) changes the parameters with a finite loss,
    the later optimizer steps see ratios != 1, and 2 micro-batches give the same parameters,
    with and without the entropy bonus."""
    batch = rollout_batch[0]._replace(logp_ref=None)
    out = []
    for micro in (1, 2):
        rl = dataclasses.replace(RL, micro_batches=micro, entropy_coef=entropy_coef)
        program = _program(policy, task, "dapo", rl)
        state = init_state(_copy(policy.params), program.optimizer(), jax.random.PRNGKey(2))
        out.append(make_update_phase(program)(state, batch))
    (whole, metrics), (chunked, metrics_2) = out
    assert np.isfinite(float(metrics["loss"])) and float(metrics["grad_norm"]) > 0
    assert int(whole.step) == 1 and _changed(whole.params, policy.params) > 0
    assert float(metrics["ratio_max"]) > 1.0 or float(metrics["ratio_min"]) < 1.0
    np.testing.assert_allclose(float(metrics["entropy"]), float(metrics_2["entropy"]), rtol=1e-5)
    for a, b in zip(jax.tree.leaves(whole.params), jax.tree.leaves(chunked.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=2e-6)


@pytest.mark.parametrize("name", ["dispo", "mhpo"])
def test_update_without_aux_metrics_is_bitwise_the_same_update(task, policy, rollout_batch, name):
    """``rl.aux_metrics=False`` drops the objective's aux metrics and nothing else: the
    parameters after 2 epochs x 2 minibatches and the loss, entropy and gradient norm are
    bitwise those of the default update."""
    batch = rollout_batch[0]
    out = []
    for aux in (True, False):
        program = _program(policy, task, name, dataclasses.replace(RL, aux_metrics=aux))
        state = init_state(_copy(policy.params), program.optimizer(), jax.random.PRNGKey(2))
        out.append(make_update_phase(program)(state, batch))
    (with_aux, m_aux), (without, m_none) = out
    base = {"loss", "entropy", "grad_norm", "grad_norm_max", "loss_first", "loss_last"}
    assert set(m_none) == base and set(m_aux) > base
    for k in base:
        assert float(m_aux[k]) == float(m_none[k]), k
    for a, b in zip(jax.tree.leaves(with_aux.params), jax.tree.leaves(without.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_entropy_bonus_changes_the_update_by_its_gradient(task, policy, rollout_batch):
    """With c_H > 0 the first optimizer step follows ∇(L − c_H·H̄): the update differs from
    c_H = 0 and the mean entropy after a large bonus step is higher."""
    batch = rollout_batch[0]._replace(logp_ref=None)
    rl = dataclasses.replace(RL, epochs=1, minibatches=1)
    ent = {}
    for c in (0.0, 5.0):
        program = _program(policy, task, "dapo", dataclasses.replace(rl, entropy_coef=c))
        state = init_state(_copy(policy.params), program.optimizer(), jax.random.PRNGKey(2))
        new, _ = make_update_phase(program)(state, batch)
        again = init_state(new.params, program.optimizer(), jax.random.PRNGKey(2))
        _, m = make_update_phase(program)(again, batch)
        ent[c] = float(m["entropy"])
    assert ent[5.0] > ent[0.0]


def test_every_preference_objective_updates(task, policy):
    cfg = PreferenceConfig(
        prompts_per_step=16, source="dataset", optim=OptimConfig(lr=1e-2, warmup_steps=0)
    )
    pairs, metrics = make_dataset_pairs(policy.graphdef, task, cfg)(
        policy.params, policy.params, jax.random.PRNGKey(4)
    )
    assert float(metrics["pair_valid_frac"]) > 0
    # the pairs are right: chosen = exact answer, rejected = the carry-free one
    chosen = task.tokenizer.decode_batch(np.asarray(pairs.chosen))
    rejected = task.tokenizer.decode_batch(np.asarray(pairs.rejected))
    valid = np.asarray(pairs.mask_chosen).sum(1) > 0
    assert all(c != r for c, r, v in zip(chosen, rejected, valid) if v)
    for name in PREFERENCE_OBJECTIVES:
        spec = get_objective(name)
        state = init_state(_copy(policy.params), preference_optimizer(cfg), jax.random.PRNGKey(5))
        update = make_preference_update(policy.graphdef, spec, spec.default_config, cfg)
        new, m = update(state, pairs)
        assert np.isfinite(float(m["loss"])) and float(m["grad_norm"]) > 0, name
        # policy == reference: the implicit reward margin starts at 0 and the DPO loss at log 2
        np.testing.assert_allclose(float(m["dpo_loss"]), np.log(2.0), rtol=1e-5)
        assert _changed(new.params, policy.params) > 0, name


def test_dynamic_sampling_keeps_mixed_groups(parity_task, policy):
    rl = dataclasses.replace(RL, group_size=2, dynamic_sampling=True, oversample=4)
    program = _program(policy, parity_task, "dapo", rl)
    batch, _, m = make_rollout_phase(program)(
        policy.params, jax.random.PRNGKey(6), None, None, None
    )
    assert batch.completions.shape[0] == P * 2
    r = np.asarray(batch.rewards).reshape(P, 2)
    mixed = r.max(1) > r.min(1)
    # as many mixed groups as were sampled (up to P) are kept; kept uniform groups are masked
    assert mixed.sum() == min(P, round(float(m["mixed_group_frac"]) * P * 4))
    np.testing.assert_array_equal(np.asarray(batch.mask).reshape(P, 2, -1).sum((1, 2)) > 0, mixed)
    np.testing.assert_allclose(float(m["masked_group_frac"]), 1 - mixed.mean())
