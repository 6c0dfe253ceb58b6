"""Low-rank adapters (LoRA, Hu et al. 2021, arXiv:2106.09685) on the projections of a policy.

A targeted projection ``y = x W (+ b)`` with ``W [d_in, d_out]`` gains two trainable factors

    y = x W + s · (x A) B (+ b),      A [d_in, r],  B [r, d_out],  s = α / r      (Eq. 3)

(``s = α / √r`` with ``rslora=True``, Kalajdzievski 2023, arXiv:2312.03732). ``A`` starts
uniform in ``±1/√d_in`` and ``B`` at zero, as PEFT initialises them, so a fresh adapter leaves
the model unchanged. The factors live in the policy's parameter tree next to the kernel they
adapt (``.../q_proj/lora_a``, ``.../q_proj/lora_b``), always in float32.

How training uses them (one rule, applied by every trainer through :func:`trainable` and
:func:`with_trainable`): **when a parameter tree has adapters, only the adapters train.** The
gradient is taken with respect to the adapters alone (no weight gradient of the base is ever
computed), the optimizer state holds moments for the adapters only, and the base weights pass
through each step unchanged. The reference policy of a KL term is the same tree with the
adapters switched off (:func:`adapters_off`: ``B = 0``, so ``s·(xA)B`` is exactly zero and the
logits are the base model's), computed inside the step from the current parameters: no second
copy of the weights is kept. :func:`fold_adapters` adds ``s·AB`` into the kernels and resets
``B`` (used between a supervised warm start and RL, so the RL reference is the warm-started
policy), and :func:`merged_params` gives the plain base tree for export.

Alternative not taken: the ``qwix`` library (LoRA by interception of NNX linear layers). Our
projections are one small ``Linear`` class in ``cliffjax.models.llama.modeling``, so an adapter
is two parameters and one extra product there, with nothing to intercept; keeping adapters as
ordinary leaves lets the partition rules, orbax checkpoints and ``jax.vmap`` over runs treat
them like any other parameter.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

PyTree = Any

#: Projections of the Llama family an adapter can target.
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
ADAPTER_LEAVES = ("lora_a", "lora_b")


@dataclasses.dataclass(frozen=True)
class LoRAConfig:
    """Adapter settings (``model.lora.*``).

    Attributes:
      rank: r; 0 turns adapters off (the whole model trains).
      alpha: α; the adapter output is scaled by ``α / r`` (or ``α / √r`` with ``rslora``).
      targets: projection names to adapt (default: every attention and MLP projection, the
        "all-linear" setting QLoRA recommends; ``[q_proj, v_proj]`` is the original paper's).
      rslora: rank-stabilised scaling ``α / √r``.
      seed: seed of the ``A`` initialisation.
    """

    rank: int = 0
    alpha: float = 16.0
    targets: tuple[str, ...] = LORA_TARGETS
    rslora: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.rank, int) or isinstance(self.rank, bool) or self.rank < 0:
            raise ValueError(f"rank must be an int >= 0 (0 = off), got {self.rank!r}")
        if not (isinstance(self.alpha, (int, float)) and math.isfinite(self.alpha)) or not (
            self.alpha > 0
        ):
            raise ValueError(f"alpha must be a finite number > 0, got {self.alpha!r}")
        targets = tuple(self.targets)
        object.__setattr__(self, "targets", targets)
        unknown = sorted(set(targets) - set(LORA_TARGETS))
        if unknown:
            raise ValueError(
                f"targets: unknown projections {unknown}; expected some of {LORA_TARGETS}"
            )
        if self.rank and not targets:
            raise ValueError("targets must name at least one projection when rank > 0")

    @property
    def enabled(self) -> bool:
        """Whether adapters are added (``rank > 0``)."""
        return self.rank > 0

    @property
    def scale(self) -> float:
        """``s = α / r`` (``α / √r`` with ``rslora``)."""
        if not self.rank:
            return 0.0
        return float(self.alpha) / (math.sqrt(self.rank) if self.rslora else self.rank)


def _is_adapter_path(path: tuple[Any, ...], _value: Any = None) -> bool:
    return bool(path) and str(path[-1]) in ADAPTER_LEAVES


def has_adapters(params: PyTree) -> bool:
    """Whether ``params`` (an ``nnx.State``) contains LoRA factors. Static: it depends on the
    tree structure only, so it can branch a traced function."""
    if not isinstance(params, nnx.State):
        return False
    return any(_is_adapter_path(p) for p, _ in nnx.to_flat_state(params))


def split_adapters(params: PyTree) -> tuple[PyTree, PyTree]:
    """``(adapters, base)``: the LoRA factors and everything else, as two ``nnx.State``."""
    return nnx.split_state(params, _is_adapter_path, ...)


def trainable(params: PyTree) -> PyTree:
    """The part of ``params`` that trains: the adapters when there are any, else all of it."""
    if not has_adapters(params):
        return params
    return split_adapters(params)[0]


def with_trainable(params: PyTree, new: PyTree) -> PyTree:
    """``params`` with its :func:`trainable` part replaced by ``new`` (``new`` itself when the
    tree has no adapters)."""
    if not has_adapters(params):
        return new
    return nnx.merge_state(split_adapters(params)[1], new)


def trainable_value_and_grad(fn: Any, params: PyTree, has_aux: bool = False) -> Any:
    """``jax.value_and_grad(fn, has_aux)`` evaluated at ``params`` with respect to
    :func:`trainable` only; returns ``(value, grads)`` with grads shaped like ``trainable``."""
    if not has_adapters(params):
        return jax.value_and_grad(fn, has_aux=has_aux)(params)
    adapters, base = split_adapters(params)
    return jax.value_and_grad(lambda a: fn(nnx.merge_state(base, a)), has_aux=has_aux)(adapters)


def adapters_off(params: PyTree) -> PyTree:
    """``params`` with every ``B`` factor zero: the base model (the adapter term is exactly 0).
    The identity for a tree without adapters."""
    if not has_adapters(params):
        return params
    flat = [
        (p, v.replace(jnp.zeros_like(v.get_value())) if str(p[-1]) == "lora_b" else v)
        for p, v in nnx.to_flat_state(params)
    ]
    return nnx.from_flat_state(flat)


def reference_or_base(reference: PyTree | None, params: PyTree) -> PyTree | None:
    """The KL reference a step should score with: ``reference`` when given, else (with
    adapters in ``params``) the base model, ``adapters_off(params)``; ``None`` otherwise."""
    if reference is None and has_adapters(params):
        return adapters_off(params)
    return reference


def _folded(params: PyTree, scale: float, keep_adapters: bool) -> PyTree:
    flat = dict(nnx.to_flat_state(params))
    out = {}
    for path, var in flat.items():
        name = str(path[-1])
        if name in ADAPTER_LEAVES:
            if keep_adapters:
                value = var.get_value()
                out[path] = var.replace(jnp.zeros_like(value) if name == "lora_b" else value)
            continue
        a = flat.get((*path[:-1], "lora_a")) if name == "kernel" else None
        if a is None:
            out[path] = var
            continue
        b = flat[(*path[:-1], "lora_b")]
        w = var.get_value()
        delta = jnp.dot(
            a.get_value().astype(jnp.float32),
            b.get_value().astype(jnp.float32),
            precision=jax.lax.Precision.HIGHEST,
        )
        out[path] = var.replace((w.astype(jnp.float32) + scale * delta).astype(w.dtype))
    return nnx.from_flat_state(list(out.items()))


def fold_adapters(params: PyTree, scale: float) -> PyTree:
    """``W ← W + s·A B`` for every adapted kernel and ``B ← 0`` (``A`` kept): the same function,
    with the adapter term moved into the base. The identity without adapters."""
    if not has_adapters(params):
        return params
    return _folded(params, scale, keep_adapters=True)


def merged_params(params: PyTree, scale: float) -> PyTree:
    """The base tree (no adapter leaves) with ``s·A B`` added into each adapted kernel: what
    the adapted model computes, as a plain checkpoint (the exporter writes this)."""
    if not has_adapters(params):
        return params
    return _folded(params, scale, keep_adapters=False)


def count_trainable(params: PyTree) -> int:
    """Number of trainable parameters (:func:`trainable`)."""
    return sum(int(x.size) for x in jax.tree.leaves(trainable(params)))
