"""``with_aux=False``: no aux metrics, and the loss and its gradient unchanged bit for bit."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cliffjax.objectives import PolicyBatch, PreferenceBatch, get_objective, list_objectives
from cliffjax.objectives.gspo import gspo_token_loss

B, T = 8, 12


def _batch(kind: str):
    k = jax.random.split(jax.random.key(0), 6)
    mask = (jnp.arange(T)[None, :] < jax.random.randint(k[0], (B, 1), 0, T + 1)).astype(jnp.int32)
    lp = lambda key: -jax.random.uniform(key, (B, T), minval=0.05, maxval=3.0)
    if kind == "preference":
        return PreferenceBatch(lp(k[1]), lp(k[2]), lp(k[3]), lp(k[4]), mask, mask[::-1])
    logp_old = lp(k[1])
    return PolicyBatch(
        logp=logp_old + 0.3 * jax.random.normal(k[2], (B, T)),
        logp_old=logp_old,
        mask=mask,
        advantages=jax.random.normal(k[3], (B,)),
        logp_ref=lp(k[4]),
        rewards=jax.random.uniform(k[5], (B,)),
    )


def _cases():
    for name in list_objectives():
        spec = get_objective(name)
        cfgs = [spec.default_config]
        if spec.kl_field is not None:  # the KL term's aux too
            cfgs.append(spec.with_kl_coef(spec.default_config, 0.05))
        for cfg in cfgs:
            yield pytest.param(spec.kind, spec.loss, cfg, id=f"{name}-beta{spec.kl_coef(cfg)}")
    cfg = dataclasses.replace(get_objective("gspo").default_config, beta=0.05)
    yield pytest.param("policy", gspo_token_loss, cfg, id="gspo_token")


@pytest.mark.parametrize(("kind", "loss", "cfg"), list(_cases()))
def test_loss_and_grad_identical_without_aux(kind, loss, cfg):
    batch = _batch(kind)
    field = "logp" if kind == "policy" else "logp_chosen"

    def value_and_grad(with_aux):
        def f(x):
            s, d, aux = loss(batch._replace(**{field: x}), cfg, with_aux=with_aux)
            return s / jnp.maximum(d, 1.0), (s, d, aux)

        return jax.value_and_grad(f, has_aux=True)

    x = getattr(batch, field)
    for wrap in (lambda f: f, jax.jit):  # eager and compiled
        (v1, (s1, d1, aux1)), g1 = wrap(value_and_grad(True))(x)
        (v0, (s0, d0, aux0)), g0 = wrap(value_and_grad(False))(x)
        assert aux0 == {} and len(aux1) > 0
        for a, b in ((v1, v0), (s1, s0), (d1, d0), (g1, g0)):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert np.all(np.isfinite(np.asarray(g1))) and np.any(np.asarray(g1) != 0)
