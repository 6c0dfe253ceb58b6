"""Smoke tests of the benchmark harness (JAX only; the PyTorch checks skip without torch).

What is pinned: the timing statistics, the log-log slope, the CLI's section parsing, one
objective row end to end (table and JSON record), the RL batch/update wiring at a tiny size,
and that the PyTorch formulas of the baseline compute the same loss and gradient as the
project's objectives (otherwise the speed ratios would compare different computations).
"""

from __future__ import annotations

import dataclasses
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cliffjax.experiments import bench
from cliffjax.objectives import get_objective, list_objectives


def test_time_fn_statistics():
    calls = []
    t = bench.time_fn(lambda: calls.append(1), reps=4, warmup=2)
    assert len(calls) == 6
    assert len(t.times) == 4
    assert t.lo <= t.median <= t.hi
    med, slow, fast = t.rate(10.0)
    assert slow <= med <= fast
    with pytest.raises(ValueError, match="reps"):
        bench.time_fn(lambda: None, reps=0)


def test_loglog_slope_recovers_power():
    x = [2.0, 4.0, 8.0, 16.0]
    assert bench.loglog_slope(x, [3 * v**1.5 for v in x]) == pytest.approx(1.5, abs=1e-9)


def test_parse_args_sections():
    args = bench.parse_args(["--only", "sweep,objectives", "--quick", "--out", ""])
    assert args.quick and args.out == ""
    assert set(args.only.split(",")) == {"sweep", "objectives"}
    with pytest.raises(SystemExit):
        bench.parse_args(["--only", "objectivez"])


def test_objective_section_jax_only(capsys):
    s = dataclasses.replace(
        bench.QUICK, reps=1, obj_shapes=((4, 8),), objectives=("dapo",), compile_objectives=()
    )
    results, table = bench.bench_objectives(s, None)
    assert [r["objective"] for r in results] == ["dapo"]
    rec = results[0]
    assert (rec["B"], rec["T"]) == (4, 8)
    assert rec["jax"]["median"] > 0
    json.dumps(results)  # the JSON report can hold it
    assert "dapo" in table and "4x8" in capsys.readouterr().out


def test_jax_objective_fn_gradient_matches_finite_difference():
    x = {k: jnp.asarray(v) for k, v in bench.objective_inputs(3, 5, seed=1).items()}
    value, grad, aux = bench.jax_objective_fn("dapo")(x)
    assert grad.shape == (3, 5) and "clip_frac_high" in aux
    # masked positions get no gradient
    assert np.all(np.asarray(grad)[np.asarray(x["mask"]) == 0] == 0)
    i, j = 0, 0
    h = 1e-2
    xp = dict(x, logp=x["logp"].at[i, j].add(h))
    xm = dict(x, logp=x["logp"].at[i, j].add(-h))
    fd = (bench.jax_objective_fn("dapo")(xp)[0] - bench.jax_objective_fn("dapo")(xm)[0]) / (2 * h)
    assert float(grad[i, j]) == pytest.approx(float(fd), rel=1e-2, abs=1e-5)
    assert math.isfinite(float(value))


def test_update_wiring_tiny():
    step, tokens, n_params, flops, x = bench.jax_update(32, 4, 3, max_len=16)
    assert tokens == 4 * (bench.PROMPT_LEN + 3)
    assert n_params == bench.model_config(32).num_params()
    assert x["completions"].shape == (4, 3)
    step()  # runs and synchronises
    # XLA's count is within a factor 2 of 6·params·tokens (attention, norms, head differ)
    if flops is not None:
        assert 0.3 < flops / (6 * n_params * tokens) < 3


@pytest.fixture(scope="module")
def bt():
    pytest.importorskip("torch")
    from cliffjax.experiments import bench_torch

    return bench_torch


@pytest.mark.parametrize("name", [n for n in list_objectives()])
def test_torch_formulas_match_jax(bt, name):
    import torch

    x_np = bench.objective_inputs(6, 7, seed=2)
    x_np["logp"] = x_np["logp_old"] + 0.3 * np.random.default_rng(3).normal(size=(6, 7)).astype(
        np.float32
    )  # ratios far enough from 1 that the clips bind
    x_jax = {k: jnp.asarray(v) for k, v in x_np.items()}
    value, grad, _ = bench.jax_objective_fn(name)(x_jax)
    x_t = {k: torch.from_numpy(np.array(v)).double() for k, v in x_np.items()}
    logp = x_t["logp"].clone().requires_grad_(True)
    loss, _ = bench.torch_objective_fn(bt, name)(logp, x_t)
    (g,) = torch.autograd.grad(loss, logp)
    assert loss.item() == pytest.approx(float(value), rel=2e-4, abs=1e-5)
    np.testing.assert_allclose(g.numpy(), np.asarray(grad), rtol=2e-3, atol=1e-5)
    assert get_objective(name).kind in ("policy", "preference")


def test_sampler_reforward_matches_kv_cache_greedy():
    from cliffjax.models.policy import make_policy
    from cliffjax.sampling import SamplingConfig, sample

    cfg = dataclasses.replace(bench.model_config(32, 16), n_heads=2)
    graphdef, params = make_policy(cfg, 0)
    prompts = jnp.asarray(np.random.default_rng(0).integers(2, bench.VOCAB, (3, 4)), jnp.int32)
    ref = bench.make_reforward(graphdef)(params, prompts, jax.random.key(0), 2, True)
    out = sample(graphdef, params, prompts, jax.random.key(0), SamplingConfig(2, temperature=0.0))
    # before any EOS the two decoders agree token for token
    done = np.cumsum(np.asarray(out.completion) == 1, axis=1) > 0
    same = np.asarray(ref[:, 4:]) == np.asarray(out.completion)
    assert np.all(same | done)


@pytest.mark.parametrize(
    "spec,sa,sb,flat",
    [
        ("bsd,dthk->bsthk", (2, 3, 8), (8, 3, 2, 4), True),
        ("bshk,hkd->bsd", (2, 3, 2, 4), (2, 4, 8), True),
        ("bsd,dv->bsv", (2, 3, 8), (8, 5), True),
        ("bshk,bthk->bhst", (2, 3, 2, 4), (2, 3, 2, 4), False),
    ],
)
def test_flat_einsum_equals_einsum(spec, sa, sb, flat):
    from cliffjax.experiments import bench_proto

    a = jax.random.normal(jax.random.key(0), sa)
    b = jax.random.normal(jax.random.key(1), sb)
    out = bench_proto.flat_einsum(spec, a, b)
    np.testing.assert_allclose(out, jnp.einsum(spec, a, b), rtol=1e-5, atol=1e-5)
    jaxpr = str(jax.make_jaxpr(lambda a, b: bench_proto.flat_einsum(spec, a, b))(a, b))
    # the flattened form is one rank-2 dot_general
    assert ("dot_general" in jaxpr and "reshape" in jaxpr) == flat


def test_flat_dots_patch_is_scoped():
    from cliffjax.experiments import bench_proto
    from cliffjax.models import transformer

    real = transformer.jnp
    with bench_proto.flat_dots():
        assert transformer.jnp.einsum is bench_proto.flat_einsum
        assert transformer.jnp.float32 is real.float32
    assert transformer.jnp is real
