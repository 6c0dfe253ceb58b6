"""Partition rules: parameter path -> ``PartitionSpec`` on the ``(data, fsdp, tensor)`` mesh.

A rule set is an ordered list of ``Rule(pattern, spec, fsdp)``; the first rule whose regex
``re.search``-es the parameter's path string (``"layers/0/attn/q/kernel"``) decides:

1. ``spec`` places the ``tensor`` axis (Megatron-style, arXiv:1909.08053 Sec. 3). It is
   aligned with the *trailing* dimensions, so the same rule covers a ``[d, h]`` kernel and a
   layer-stacked ``[L, d, h]`` one. A column-parallel kernel ``[d_in, d_out]`` is
   ``(None, "tensor")``: each device computes a slice of the outputs and no communication is
   needed until the row-parallel kernel ``("tensor", None)`` that follows, whose partial sums
   are all-reduced once. Embedding tables are split over the vocabulary.
2. With ``fsdp=True`` the largest still-unsplit dimension that the ``fsdp`` axis size divides
   is split over ``fsdp`` (ZeRO-3: arXiv:1910.02054). Norm scales are tiny and stay whole.
3. Any axis whose size does not divide its dimension is dropped (that dimension is
   replicated) instead of failing: a tiny vocabulary of 18 tokens simply is not split.

Paths no rule matches are replicated and listed in the returned report. The ``data`` axis
never appears in a parameter spec: parameters are replicated over it.

The same rules give the optimizer state its shardings (Adam moments have the parameters'
shapes and paths); ``opt_state_shardings`` maps them with ``optax.tree_utils.tree_map_params``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

PyTree = Any


class Rule(NamedTuple):
    """One partition rule.

    Attributes:
      pattern: regex searched (``re.search``) in the ``/``-joined parameter path.
      spec: per-dimension mesh axis (``"tensor"`` or ``None``) for the trailing dimensions.
      fsdp: whether to also split the largest free dimension over the ``fsdp`` axis.
    """

    pattern: str
    spec: tuple[str | None, ...]
    fsdp: bool = True


COLUMN = (None, "tensor")
ROW = ("tensor", None)

# First the names of this repo's transformer (core/models/transformer.py; einsum weights with
# explicit head / hidden axes), then the usual nnx.Linear / Llama / GPT spellings so a model
# loaded later with other module names still gets tensor parallelism.
TRANSFORMER_RULES: tuple[Rule, ...] = (
    # Norms: a few hundred floats; splitting them only adds collectives.
    Rule(r"(^|/)[^/]*(norm|ln)[^/]*/(scale|bias)$", (), fsdp=False),
    # Fused attention in-projection [d, 3, H, Dh]: column parallel over heads, so attention
    # itself is local to each device's heads.
    Rule(r"(^|/)attn/qkv$", (None, None, "tensor", None)),
    # Attention out-projection [H, Dh, d]: row parallel (partial sums all-reduced once).
    Rule(r"(^|/)attn/out$", ("tensor", None, None)),
    # SwiGLU [d, 2, F] column parallel over the hidden width, down [F, d] row parallel.
    Rule(r"(^|/)mlp/gate_up$", (None, None, "tensor")),
    Rule(r"(^|/)mlp/down$", ("tensor", None)),
    # Untied LM head [d, V]: column parallel over the vocabulary.
    Rule(r"(^|/)lm_head$", COLUMN),
    # nnx.Linear-style [d_in, d_out] kernels.
    Rule(
        r"(^|/)(q|k|v|qkv|wq|wk|wv|wqkv|query|key|value|q_proj|k_proj|v_proj|c_attn)/kernel$",
        COLUMN,
    ),
    Rule(
        r"(^|/)(q|k|v|qkv|wq|wk|wv|wqkv|query|key|value|q_proj|k_proj|v_proj|c_attn)/bias$",
        ("tensor",),
    ),
    Rule(r"(^|/)(o|out|wo|o_proj|out_proj|c_proj|attn_out)/kernel$", ROW),
    Rule(r"(^|/)(up|gate|w1|w3|wi|up_proj|gate_proj|fc1|c_fc|gate_up)/kernel$", COLUMN),
    Rule(r"(^|/)(up|gate|w1|w3|wi|up_proj|gate_proj|fc1|c_fc|gate_up)/bias$", ("tensor",)),
    Rule(r"(^|/)(down|w2|down_proj|fc2|mlp_out)/kernel$", ROW),
    Rule(r"(^|/)(lm_head|unembed|head|output)/kernel$", COLUMN),
    # LoRA factors (cliffjax.models.lora): B [r, d_out] of a column-parallel projection splits
    # its outputs like the kernel; A [d_in, r] of a row-parallel one splits its inputs (the
    # product x·A is then a partial sum, reduced like the kernel's). Everything else about an
    # adapter is small: replicated, never FSDP-split.
    Rule(
        r"(^|/)(q|k|v|qkv|wq|wk|wv|wqkv|query|key|value|q_proj|k_proj|v_proj|c_attn|up|gate|w1|"
        r"w3|wi|up_proj|gate_proj|fc1|c_fc|gate_up)/lora_b$",
        COLUMN,
        fsdp=False,
    ),
    Rule(
        r"(^|/)(o|out|wo|o_proj|out_proj|c_proj|attn_out|down|w2|down_proj|fc2|mlp_out)/lora_a$",
        ROW,
        fsdp=False,
    ),
    Rule(r"/lora_(a|b)$", (), fsdp=False),
    # Token embedding [V, d]: vocabulary parallel.
    Rule(
        r"(^|/)(embed|embedding|tok_embed|token_embed|wte|embed_tokens)[^/]*/(embedding|weight)$",
        ROW,
    ),
    # Remaining biases (row-parallel outputs, ...): replicated over tensor, FSDP if divisible.
    Rule(r"/bias$", ()),
)

PARTITION_RULES: dict[str, tuple[Rule, ...]] = {
    "transformer": TRANSFORMER_RULES,
    # Only FSDP (every parameter split over its largest dimension), no tensor parallelism.
    "fsdp_only": (Rule(r".*", ()),),
    # Everything replicated (pure data parallelism, whatever the mesh).
    "replicated": (Rule(r".*", (), fsdp=False),),
}


def path_str(path: Sequence[Any]) -> str:
    """``/``-joined string of a ``jax.tree_util`` key path.

    A trailing ``.value`` (how ``nnx.Variable`` leaves flatten) is dropped, so an
    ``nnx.State`` path reads ``layers/0/attn/q/kernel``.
    """
    parts: list[str] = []
    for key in path:
        if isinstance(key, jax.tree_util.DictKey):
            parts.append(str(key.key))
        elif isinstance(key, jax.tree_util.SequenceKey):
            parts.append(str(key.idx))
        elif isinstance(key, jax.tree_util.GetAttrKey):
            parts.append(key.name)
        elif isinstance(key, jax.tree_util.FlattenedIndexKey):
            parts.append(str(key.key))
        else:
            parts.append(str(key))
    if len(parts) > 1 and parts[-1] == "value":
        parts.pop()
    return "/".join(parts)


@dataclasses.dataclass(frozen=True)
class SpecDecision:
    """Why a parameter got its spec (for reports and tests).

    Attributes:
      path: parameter path string.
      shape: parameter shape.
      spec: the chosen ``PartitionSpec``.
      rule: the matching rule's pattern, or ``None`` if no rule matched (replicated).
      dropped: mesh axes a rule asked for but the dimension could not be divided by.
    """

    path: str
    shape: tuple[int, ...]
    spec: PartitionSpec
    rule: str | None
    dropped: tuple[str, ...] = ()


def spec_for(
    path: str, shape: Sequence[int], mesh_shape: dict[str, int], rules: Sequence[Rule]
) -> SpecDecision:
    """Pick the ``PartitionSpec`` of one parameter (see the module docstring for the order).

    Args:
      path: parameter path string (``path_str``).
      shape: parameter shape.
      mesh_shape: axis name -> size (``dict(mesh.shape)``).
      rules: ordered rule set.
    """
    shape = tuple(int(d) for d in shape)
    ndim = len(shape)
    for rule in rules:
        if not re.search(rule.pattern, path):
            continue
        if len(rule.spec) > ndim:
            continue  # e.g. a "kernel" rule meeting a rank-1 leaf: let a later rule decide.
        axes: list[str | None] = [None] * (ndim - len(rule.spec)) + list(rule.spec)
        dropped: list[str] = []
        for i, axis in enumerate(axes):
            if axis is not None and shape[i] % mesh_shape.get(axis, 1):
                dropped.append(axis)
                axes[i] = None
            elif axis is not None and mesh_shape.get(axis, 1) == 1:
                # A 1-way axis splits nothing: leave the dimension free for FSDP, and keep
                # printed specs honest (P() rather than P(None, 'tensor') when tensor=1).
                axes[i] = None
        fsdp_size = mesh_shape.get("fsdp", 1)
        if rule.fsdp and fsdp_size > 1 and ndim > 0:
            free = [i for i in range(ndim) if axes[i] is None and shape[i] % fsdp_size == 0]
            if free:
                # Largest dimension; ties go to the leading one (contiguous shards).
                best = max(free, key=lambda i: (shape[i], -i))
                axes[best] = "fsdp"
            elif not any(a == "fsdp" for a in axes):
                dropped.append("fsdp")
        while axes and axes[-1] is None:
            axes.pop()
        return SpecDecision(path, shape, PartitionSpec(*axes), rule.pattern, tuple(dropped))
    return SpecDecision(path, shape, PartitionSpec(), None, ())


def _shape_of(leaf: Any) -> tuple[int, ...]:
    return tuple(np.shape(leaf)) if not hasattr(leaf, "shape") else tuple(leaf.shape)


def partition_specs(
    params: PyTree, mesh: Mesh, rules: Sequence[Rule] | str = "transformer"
) -> tuple[PyTree, list[SpecDecision]]:
    """``PartitionSpec`` for every leaf of ``params`` (arrays or ``ShapeDtypeStruct``).

    Returns ``(specs, decisions)``: ``specs`` has the structure of ``params`` (``nnx.State``
    ``Variable`` wrappers kept, so it can be passed to ``jax.jit`` as shardings after
    ``to_shardings``); ``decisions`` lists one ``SpecDecision`` per leaf in flatten order.
    """
    if isinstance(rules, str):
        rules = PARTITION_RULES[rules]
    mesh_shape = dict(mesh.shape)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
    decisions = [spec_for(path_str(p), _shape_of(x), mesh_shape, rules) for p, x in leaves]
    specs = jax.tree_util.tree_unflatten(treedef, [d.spec for d in decisions])
    return specs, decisions


def unmatched(decisions: Sequence[SpecDecision]) -> list[str]:
    """Paths that no rule matched (replicated by the fallback)."""
    return [d.path for d in decisions if d.rule is None]


def to_shardings(mesh: Mesh, specs: PyTree) -> PyTree:
    """Map a tree of ``PartitionSpec`` to ``NamedSharding`` on ``mesh``."""
    return jax.tree.map(
        lambda s: NamedSharding(mesh, s), specs, is_leaf=lambda x: isinstance(x, PartitionSpec)
    )


def param_shardings(
    params: PyTree, mesh: Mesh, rules: Sequence[Rule] | str = "transformer"
) -> PyTree:
    """``NamedSharding`` for every parameter leaf (``partition_specs`` + ``to_shardings``)."""
    specs, _ = partition_specs(params, mesh, rules)
    return to_shardings(mesh, specs)


def opt_state_shardings(
    optimizer: optax.GradientTransformation | Callable[[PyTree], PyTree],
    params: PyTree,
    params_shardings: PyTree,
    mesh: Mesh,
) -> PyTree:
    """Shardings of ``optimizer.init(params)``: each parameter-shaped subtree (Adam's
    ``mu``/``nu``, ...) mirrors ``params_shardings``; everything else (step counts, injected
    hyperparameters) is replicated.

    Needed because ``jax.jit(opt.init)(sharded_params)`` returns *unsharded* zeros (they do
    not depend on the data), which would put the full Adam state on every device.
    """
    abstract = jax.eval_shape(optimizer.init if hasattr(optimizer, "init") else optimizer, params)
    rep = NamedSharding(mesh, PartitionSpec())
    return optax.tree_utils.tree_map_params(
        optimizer,
        lambda _, sharding: sharding,
        abstract,
        params_shardings,
        transform_non_params=lambda _: rep,
    )


def tree_specs(tree: PyTree) -> PyTree:
    """The ``PartitionSpec`` each (placed) array of ``tree`` carries, for checks and logs."""
    return jax.tree.map(lambda x: x.sharding.spec, tree)


def describe(tree: PyTree, max_rows: int | None = None) -> str:
    """One line per leaf: path, shape, dtype, spec, bytes per device. For logs and debugging
    ("what is sharded?"); works on placed arrays."""
    rows = []
    for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]:
        spec = getattr(getattr(x, "sharding", None), "spec", None)
        shard = x.sharding.shard_shape(x.shape) if hasattr(x, "sharding") else x.shape
        nbytes = int(np.prod(shard)) * np.dtype(x.dtype).itemsize
        rows.append(
            f"{path_str(path):<48} {x.dtype!s:>8} {x.shape!s:<18} {spec!s:<28} {nbytes:>10} B/dev"
        )
    if max_rows is not None:
        rows = rows[:max_rows]
    return "\n".join(rows)


def bytes_per_device(
    params: PyTree,
    mesh_shape: dict[str, int],
    rules: Sequence[Rule] | str = "transformer",
    copies: int = 1,
) -> int:
    """Largest number of bytes one device holds for ``copies`` parameter-shaped trees.

    ``copies=3`` counts parameters plus Adam's two moments (fp32: 12 bytes per parameter
    before sharding); ``copies=4`` adds the gradients a step materialises. Needs only shapes
    and the mesh shape (no devices), so it sizes meshes larger than the machine it runs on.
    """
    if isinstance(rules, str):
        rules = PARTITION_RULES[rules]
    total = 0
    for path, x in jax.tree_util.tree_flatten_with_path(params)[0]:
        shape = _shape_of(x)
        spec = spec_for(path_str(path), shape, mesh_shape, rules).spec
        shard = list(shape)
        for i, axes in enumerate(spec):
            for axis in (axes,) if isinstance(axes, str) else (axes or ()):
                shard[i] = -(-shard[i] // mesh_shape[axis])
        total += int(np.prod(shard)) * np.dtype(x.dtype).itemsize
    return total * copies
