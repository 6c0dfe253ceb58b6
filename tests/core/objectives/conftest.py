"""Shared fixtures of the objective tests: golden files (copied into ./golden) and batches."""

from __future__ import annotations

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cliffjax.objectives import PolicyBatch, finalize_loss

GOLDEN = pathlib.Path(__file__).parent / "golden"


@pytest.fixture(scope="session")
def golden_inputs() -> dict:
    return json.loads((GOLDEN / "inputs.json").read_text())["seed0"]


@pytest.fixture(scope="session")
def tunix() -> dict:
    return json.loads((GOLDEN / "tunix.json").read_text())["seed0"]


@pytest.fixture(scope="session")
def trl() -> dict:
    return json.loads((GOLDEN / "trl.json").read_text())["seed0"]


@pytest.fixture()
def x64():
    """Run the test body with float64 enabled."""
    with jax.enable_x64(True):
        yield


def golden_batch(d: dict, dtype=jnp.float64, with_ref: bool = True) -> PolicyBatch:
    """The golden case as a PolicyBatch (call inside ``jax.enable_x64`` for float64)."""
    return PolicyBatch(
        logp=jnp.asarray(d["logp_new"], dtype),
        logp_old=jnp.asarray(d["logp_old"], dtype),
        mask=jnp.asarray(d["mask"], jnp.int32),
        advantages=jnp.asarray(d["advantages"], dtype),
        logp_ref=jnp.asarray(d["logp_ref"], dtype) if with_ref else None,
    )


def loss_value_and_grad(loss_fn, batch: PolicyBatch, cfg):
    """``(loss, d loss / d logp, aux)`` of ``loss_sum / denominator``."""

    def f(logp):
        s, d, aux = loss_fn(batch._replace(logp=logp), cfg)
        return finalize_loss(s, d), aux

    (v, aux), g = jax.value_and_grad(f, has_aux=True)(batch.logp)
    return v, g, aux


_JIT_CACHE: dict = {}


def jit_value_and_grad(loss_fn, cfg):
    """Jitted ``batch -> (loss, d loss/d logp, aux)``; one compile per (fn, cfg, shapes)."""
    key = (loss_fn, cfg)
    if key not in _JIT_CACHE:

        def run(batch):
            return loss_value_and_grad(loss_fn, batch, cfg)

        _JIT_CACHE[key] = jax.jit(run)
    return _JIT_CACHE[key]


def max_abs(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


class Helpers:
    """Helper functions handed to tests as the ``h`` fixture (importlib mode has no conftest
    imports)."""

    golden_batch = staticmethod(golden_batch)
    loss_value_and_grad = staticmethod(loss_value_and_grad)
    jit_value_and_grad = staticmethod(jit_value_and_grad)
    max_abs = staticmethod(max_abs)


@pytest.fixture(scope="session")
def h() -> type[Helpers]:
    return Helpers
