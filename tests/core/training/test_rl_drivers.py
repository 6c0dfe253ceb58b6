"""The two drivers of the one RL step agree, with every option, and a Python reward gives the
same update as the equivalent JAX reward.

Driver 1 (``make_rl_step_fn``, the main job's Python loop) and driver 2 (``make_rl_train``,
the sweeps' ``lax.scan``) draw the same keys, so for the same seed, settings and number of
steps they must give the same parameters and metrics up to float32 round-off (the two are
compiled as different programs, so XLA may fuse and order sums differently).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cliffjax.analysis import Perturbation, PerturbedReward, RewardShift
from cliffjax.objectives import get_objective
from cliffjax.tasks.wrappers import FixedPrompts, HostReward
from cliffjax.training.config import OptimConfig, RLConfig
from cliffjax.training.program import RLProgram
from cliffjax.training.rl import make_rl_step_fn, make_rl_train
from cliffjax.training.state import init_state

STEPS = 2
BASE = RLConfig(
    steps=STEPS,
    prompts_per_step=4,
    group_size=4,
    epochs=2,
    minibatches=2,
    optim=OptimConfig(lr=1e-2, warmup_steps=0, max_grad_norm=1.0),
)
PARAM_ATOL = 2e-5
# Metrics that count tokens on either side of a threshold (a ratio exactly at 1 ± ε after
# round-off) may differ by one token between the programs; compared loosely.
THRESHOLD_METRICS = ("frac_", "clip_frac", "capped_frac", "mask_frac")

CASES = {
    "grpo+entropy+kl": ("grpo", dict(entropy_coef=0.05), dict(beta=0.05)),
    "mhpo+entropy+kl": ("mhpo", dict(entropy_coef=0.05), dict(beta=0.05)),
    "dispo+entropy+kl": ("dispo", dict(entropy_coef=0.05), dict(beta=0.05)),
    "dapo+micro_batches": ("dapo", dict(micro_batches=2), {}),
    "dapo+dynamic+overlong": (
        "dapo",
        dict(dynamic_sampling=True, oversample=2, overlong_buffer=2, overlong_factor=0.5),
        {},
    ),
    "cispo+top_k+temperature": ("cispo", dict(temperature=0.8, top_k=5), {}),
}


def _program(policy, task, name, rl_kw, obj_kw, transform=None):
    spec = get_objective(name)
    obj_cfg = dataclasses.replace(spec.default_config, **obj_kw)
    return RLProgram(
        policy.graphdef, task, spec, obj_cfg, dataclasses.replace(BASE, **rl_kw), transform
    )


def _host_run(program, params, key, reference=None, shift=None, replays=None):
    data_key, state_key = jax.random.split(key)
    state = init_state(jax.tree.map(jnp.copy, params), program.optimizer(), state_key)
    fn = make_rl_step_fn(program, reference, data_key, shift=shift, replays=replays)
    history = []
    for i in range(program.rl.steps):
        state, metrics = fn(state, i)
        history.append(metrics)
    return state.params, history


def _assert_same(params_a, params_b, history, metrics):
    for a, b in zip(jax.tree.leaves(params_a), jax.tree.leaves(params_b)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=PARAM_ATOL)
    for i, host in enumerate(history):
        for k, v in metrics.items():
            if k not in host:
                continue
            loose = any(k.startswith(p) or p in k for p in THRESHOLD_METRICS)
            np.testing.assert_allclose(
                host[k], float(v[i]), rtol=1e-4, atol=0.05 if loose else 1e-5, err_msg=k
            )


@pytest.mark.parametrize("case", list(CASES))
def test_drivers_agree_for_every_option(case, parity_task, policy):
    name, rl_kw, obj_kw = CASES[case]
    program = _program(policy, parity_task, name, rl_kw, obj_kw)
    key = jax.random.key(7)
    reference = policy.params if program.needs_reference else None
    params_h, history = _host_run(program, policy.params, key, reference)
    params_g, metrics, _ = jax.jit(make_rl_train(program))(policy.params, key, reference)
    assert set(history[0]) >= set(metrics) - {"kl_ref"}
    assert any(
        not np.allclose(a, b)
        for a, b in zip(jax.tree.leaves(params_g), jax.tree.leaves(policy.params))
    )
    _assert_same(params_h, params_g, history, metrics)
    if program.needs_reference:
        assert "kl_ref" in metrics and "kl_mean" in metrics
    if program.rl.entropy_coef:
        assert np.all(np.asarray(metrics["entropy"]) > 0)
    if program.rl.dynamic_sampling:
        assert "masked_group_frac" in metrics


def test_shift_and_replay_in_both_drivers(task, policy):
    """A reward shift r + ε·δ through the transform, recorded rollouts replayed by both
    drivers: replaying the recording run's own rollouts at its ε reproduces it exactly."""
    prompts, meta = task.train_prompt_set(jax.random.key(0), 4)
    fixed = FixedPrompts(task, prompts, meta)
    tok = task.tokenizer
    transform = PerturbedReward(task.answer_digits, tok.digit0_id, tok.eos_id)
    # δ = 1 for the completions whose first token is a digit below 5, via the answer table
    table = jnp.zeros((4, 110), jnp.float32).at[:, :5].set(1.0)
    shift = RewardShift(jnp.float32(0.5), Perturbation(table, jnp.zeros((0,), jnp.float32)))
    program = _program(policy, fixed, "grpo", dict(entropy_coef=0.05), dict(beta=0.0), transform)
    key = jax.random.key(3)
    train = jax.jit(make_rl_train(program, record=True))
    params_g, metrics, records = train(policy.params, key, None, shift)
    assert records.completions.shape[:2] == (STEPS, 16)
    np.testing.assert_allclose(
        np.asarray(metrics["reward_seen_mean"]),
        np.asarray(records.rewards.mean(1) + 0.5 * records.delta.mean(1)),
        rtol=1e-6,
    )
    assert np.asarray(records.prompts).max() > 0
    params_h, history = _host_run(program, policy.params, key, shift=shift)
    _assert_same(params_h, params_g, history, metrics)
    # replay: in-graph bitwise, host to round-off
    replay = jax.jit(make_rl_train(program))
    params_r, _, _ = replay(policy.params, key, None, shift, records)
    for a, b in zip(jax.tree.leaves(params_r), jax.tree.leaves(params_g)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    params_hr, _ = _host_run(program, policy.params, key, shift=shift, replays=records)
    for a, b in zip(jax.tree.leaves(params_hr), jax.tree.leaves(params_g)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=PARAM_ATOL)


def _python_verifier(texts, finished, meta):
    """Exact-match addition verifier on decoded text: the canonical number, then EOS."""
    correct = [
        float(done and text == str(int(answer)))
        for text, done, answer in zip(texts, finished, meta["answer"])
    ]
    return {"correct": np.asarray(correct, np.float32)}


def test_python_reward_gives_the_same_update_as_the_jax_reward(task, policy):
    """A Python verifier on decoded text (through ``jax.pure_callback``) and the task's JAX
    reward give identical rewards and identical parameters, also under ``vmap``."""
    # warm-start-free policy scores ~0 on addition: give it a few correct answers by training
    # on the teacher for a moment, so the rewards are not all zero
    from cliffjax.training.config import SFTConfig
    from cliffjax.training.sft import make_sft_train

    sft = SFTConfig(steps=60, batch_size=64, optim=OptimConfig(lr=1e-2, warmup_steps=0))
    warm, _ = jax.jit(make_sft_train(policy.graphdef, task, sft))(policy.params, jax.random.key(1))
    host_task = HostReward(task, _python_verifier)
    out = {}
    for label, t in (("jax", task), ("host", host_task)):
        program = _program(policy, t, "grpo", {}, dict(beta=0.0))
        train = jax.jit(jax.vmap(make_rl_train(program), in_axes=(None, 0)))
        out[label] = train(warm, jax.random.split(jax.random.key(5), 2))
    (p_jax, m_jax, _), (p_host, m_host, _) = out["jax"], out["host"]
    assert float(m_jax["reward_mean"].mean()) > 0
    np.testing.assert_array_equal(
        np.asarray(m_jax["reward_mean"]), np.asarray(m_host["reward_mean"])
    )
    for a, b in zip(jax.tree.leaves(p_jax), jax.tree.leaves(p_host)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_host_reward_stops_on_a_non_finite_value(task, policy):
    def bad(texts, finished, meta):
        return {"correct": np.full(len(texts), np.nan, np.float32)}

    program = _program(policy, HostReward(task, bad), "grpo", {}, dict(beta=0.0))
    with pytest.raises(Exception, match="host reward component 'correct' is nan"):
        jax.block_until_ready(jax.jit(make_rl_train(program))(policy.params, jax.random.key(0)))
