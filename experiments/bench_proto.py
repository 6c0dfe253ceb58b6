"""Prototypes of speed changes to the project's model path, measured by ``cliffjax.experiments.bench``.

``flat_dots()`` reroutes the transformer's projection einsums (``cliffjax.models.transformer``)
to plain 2-D matrix products: ``x[B, S, d] · W[d, ...]`` becomes
``x.reshape(B·S, d) @ W.reshape(d, -1)`` reshaped back. The result is the same product (same
parameters, same layout; float summation order may differ in the last bit), so it is a
performance-only change. Why: XLA:CPU lowers a dot whose operands keep the batch and sequence
axes separate, or whose contraction spans two axes (``bshk,hkd->bsd``), to a slower path than a
canonical ``[M, K] @ [K, N]`` matmul, and the backward pass of such dots (the weight gradient
contracts over both ``b`` and ``s``) was measured 2x slower for the SwiGLU block
(``docs/benchmarks.md``). The fix belongs in ``core/models/transformer.py``; until its owner
has finished, the bench measures it here by patching that module's ``jnp`` name during
tracing only.
"""

from __future__ import annotations

import contextlib
import math
import types
from collections.abc import Iterator

import jax
import jax.numpy as jnp

Array = jax.Array


def _split(spec: str) -> tuple[str, str, str]:
    lhs_rhs, out = spec.replace(" ", "").split("->")
    lhs, rhs = lhs_rhs.split(",")
    return lhs, rhs, out


def flat_einsum(spec: str, a: Array, b: Array, **kwargs) -> Array:
    """``jnp.einsum`` computed as one 2-D matmul when ``spec`` has the form
    ``<free_a><contract>,<contract><free_b>-><free_a><free_b>`` (each letter once); otherwise
    ``jnp.einsum`` itself."""
    lhs, rhs, out = _split(spec)
    contract = "".join(c for c in lhs if c in rhs)
    free_a = lhs[: len(lhs) - len(contract)]
    free_b = rhs[len(contract) :]
    ok = (
        contract
        and lhs.endswith(contract)
        and rhs.startswith(contract)
        and out == free_a + free_b
        and not set(free_a) & set(free_b)
    )
    if not ok:
        return jnp.einsum(spec, a, b, **kwargs)
    m = math.prod(a.shape[: len(free_a)])
    k = math.prod(a.shape[len(free_a) :])
    n = math.prod(b.shape[len(contract) :])
    y = jnp.matmul(
        a.reshape(m, k),
        b.reshape(k, n),
        preferred_element_type=kwargs.get("preferred_element_type"),
    )
    return y.reshape(a.shape[: len(free_a)] + b.shape[len(contract) :])


@contextlib.contextmanager
def flat_dots() -> Iterator[None]:
    """Within the block, ``cliffjax.models.transformer`` computes its projections with
    :func:`flat_einsum` (functions traced inside the block keep it)."""
    from cliffjax.models import transformer

    real = transformer.jnp
    proxy = types.SimpleNamespace(
        **{k: getattr(real, k) for k in dir(real) if not k.startswith("__")}
    )
    proxy.einsum = flat_einsum
    transformer.jnp = proxy
    try:
        yield
    finally:
        transformer.jnp = real
