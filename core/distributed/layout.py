"""``Layout``: the one object a trainer threads through to run sharded.

A layout is a mesh plus partition rules. It classifies every argument and result of a jit'd
function by *kind*:

* ``"model"``: parameters and anything shaped like them — a whole ``TrainState`` (params,
  Adam moments, step, key), a frozen reference. Floating-point leaves get the partition rule
  of their path (rules are ``re.search``-ed, so ``opt_state/1/0/mu/layers/0/attn/qkv`` gets
  the rule of ``layers/0/attn/qkv``: optimizer moments are sharded exactly like their
  parameters); integer leaves (step counters, PRNG key data) and scalars are replicated.
* ``"batch"``: data with a leading batch dimension (prompts, rollouts, masks): rows split
  over ``data`` x ``fsdp``; scalars replicated.
* ``"replicated"``: scalars, keys, metrics.

``layout.jit(fn, in_kinds, out_kinds, donate_argnums)`` compiles ``fn`` with the matching
explicit ``in_shardings``/``out_shardings`` (traced under ``jax.set_mesh(mesh)``, so
``constrain_rows`` inside ``fn`` takes effect); shardings are computed on the first call from the
arguments' structure and shapes (and ``jax.eval_shape`` of the result), so a step function
needs no sharding code of its own. It is also the one sharding planner: ``summary`` (the "what
is sharded" table), ``opt_state_shardings`` / ``init_opt_state`` (the optimizer state built
in shardings that mirror the parameters) and ``abstract`` (orbax restore targets on this
mesh). With no layout, a trainer uses plain ``jax.jit``
(``jit_maybe_sharded``); on a 1x1x1 mesh the programs are the same.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding

from cliffjax.distributed.mesh import batch_shardings, replicated
from cliffjax.distributed.partition import (
    PARTITION_RULES,
    Rule,
    SpecDecision,
    opt_state_shardings,
    path_str,
    spec_for,
    unmatched,
)

PyTree = Any
KINDS = ("model", "batch", "replicated")


@dataclasses.dataclass(frozen=True)
class Layout:
    """A mesh and the partition rules that place a run's arrays on it.

    Attributes:
      mesh: the ``(data, fsdp, tensor)`` mesh (``make_mesh``).
      rules: a rule-set name from ``PARTITION_RULES`` or a tuple of ``Rule``.
      _wrappers: memo of ``sharded_partial`` (internal; not part of equality or hash).
    """

    mesh: Mesh
    rules: str | tuple[Rule, ...] = "transformer"
    _wrappers: dict = dataclasses.field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.rules, str) and self.rules not in PARTITION_RULES:
            raise ValueError(
                f"Layout.rules={self.rules!r}: expected one of {sorted(PARTITION_RULES)}"
            )

    @property
    def rule_set(self) -> tuple[Rule, ...]:
        """The rules as a tuple of ``Rule``."""
        return PARTITION_RULES[self.rules] if isinstance(self.rules, str) else tuple(self.rules)

    @property
    def replicated(self) -> NamedSharding:
        """Sharding of scalars, keys and metrics."""
        return replicated(self.mesh)

    def decisions(self, tree: PyTree) -> list[SpecDecision]:
        """Per-leaf rule decisions for the floating-point leaves of ``tree`` (for reports)."""
        mesh_shape = dict(self.mesh.shape)
        out = []
        for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]:
            if _is_float(x):
                out.append(spec_for(path_str(path), np.shape(x), mesh_shape, self.rule_set))
        return out

    def model(self, tree: PyTree) -> PyTree:
        """Shardings of a parameter-like tree (params, train state, reference)."""
        mesh_shape = dict(self.mesh.shape)
        rules = self.rule_set

        def one(path, x):
            if not _is_float(x) or np.ndim(x) == 0:
                return self.replicated
            spec = spec_for(path_str(path), np.shape(x), mesh_shape, rules).spec
            return NamedSharding(self.mesh, spec)

        return jax.tree_util.tree_map_with_path(one, tree)

    def batch(self, tree: PyTree) -> PyTree:
        """Shardings of a batch tree (leading dim over ``data`` x ``fsdp``, checked)."""
        return batch_shardings(self.mesh, tree)

    def shardings(self, tree: PyTree, kind: str) -> PyTree:
        """Shardings of ``tree`` for one of ``KINDS``."""
        if kind == "model":
            return self.model(tree)
        if kind == "batch":
            return self.batch(tree)
        if kind == "replicated":
            return jax.tree.map(lambda _: self.replicated, tree)
        raise ValueError(f"kind={kind!r}: expected one of {KINDS}")

    def unmatched(self, params: PyTree) -> list[str]:
        """Parameter paths no rule matched (they stay replicated)."""
        return unmatched(self.decisions(params))

    def summary(self, params: PyTree) -> str:
        """The "what is sharded" table of a run: path, shape, spec, rule (for the run log)."""
        lines = [f"mesh {dict(self.mesh.shape)}"]
        for d in self.decisions(params):
            note = f" (dropped {','.join(d.dropped)}: not divisible)" if d.dropped else ""
            rule = d.rule if d.rule is not None else "<no rule: replicated>"
            lines.append(f"  {d.path:<44} {d.shape!s:<16} {d.spec!s:<26} {rule}{note}")
        return "\n".join(lines)

    def opt_state_shardings(self, optimizer: optax.GradientTransformation, params: PyTree):
        """Shardings of ``optimizer.init(params)``: every parameter-shaped leaf (Adam's moments)
        mirrors its parameter (``optax.tree_utils.tree_map_params``), counters replicated."""
        return opt_state_shardings(optimizer, params, self.model(params), self.mesh)

    def init_opt_state(self, optimizer: optax.GradientTransformation, params: PyTree) -> PyTree:
        """``optimizer.init(params)`` built directly in :meth:`opt_state_shardings`.

        A plain ``jax.jit(optimizer.init)`` returns the zeros of Adam's moments replicated on
        every device (they do not depend on the sharded input), defeating FSDP's saving.
        """
        out = self.opt_state_shardings(optimizer, params)
        with jax.set_mesh(self.mesh):
            return jax.jit(optimizer.init, in_shardings=(self.model(params),), out_shardings=out)(
                params
            )

    def abstract(self, tree: PyTree, kind: str = "model") -> PyTree:
        """``jax.ShapeDtypeStruct`` tree carrying this layout's concrete ``NamedSharding`` s:
        the restore target orbax needs to place (and reshard) a checkpoint onto this mesh.

        ``tree`` may hold arrays or ``ShapeDtypeStruct``. (A target from ``nnx.eval_shape``
        under ``jax.set_mesh`` carries an ``AbstractMesh``, which orbax rejects.)
        """
        return jax.tree.map(
            lambda x, s: jax.ShapeDtypeStruct(np.shape(x), _dtype(x), sharding=s),
            tree,
            self.shardings(tree, kind),
        )

    def place(self, tree: PyTree, kind: str = "model") -> PyTree:
        """``jax.device_put`` ``tree`` with the shardings of ``kind`` (a device-to-device
        reshard for arrays already on devices; no host round trip).

        Always fresh buffers (``may_alias=False``): a placed tree is typically donated to a
        step next, which must not delete the caller's original arrays.
        """
        return jax.device_put(tree, self.shardings(tree, kind), may_alias=False)

    def jit(
        self,
        fn: Callable[..., Any],
        in_kinds: Sequence[str],
        out_kinds: str | Sequence[str],
        donate_argnums: Sequence[int] = (),
    ) -> Callable[..., Any]:
        """``jax.jit(fn)`` with explicit in/out shardings derived from argument kinds.

        Args:
          fn: a pure function of positional array/pytree arguments.
          in_kinds: one kind per positional argument.
          out_kinds: one kind for the whole result, or one per element of a tuple result.
          donate_argnums: arguments whose buffers the result may reuse (train states).
        Returns:
          A callable with ``fn``'s signature. The first call with a new argument structure or
          shapes computes the shardings and compiles; later calls reuse the program.
        """
        in_kinds = tuple(in_kinds)
        for kind in (*in_kinds, *([out_kinds] if isinstance(out_kinds, str) else out_kinds)):
            if kind not in KINDS:
                raise ValueError(f"kind={kind!r}: expected one of {KINDS}")
        cache: dict[Any, Callable[..., Any]] = {}

        def call(*args):
            if len(args) != len(in_kinds):
                raise TypeError(f"expected {len(in_kinds)} positional arguments, got {len(args)}")
            # Trace and run under the mesh so that ``constrain_rows`` (and bare
            # PartitionSpec constraints) inside ``fn`` resolve against it.
            with jax.set_mesh(self.mesh):
                return _call(*args)

        def _call(*args):
            leaves, treedef = jax.tree.flatten(args)
            key = (treedef, tuple((np.shape(x), _dtype(x)) for x in leaves))
            compiled = cache.get(key)
            if compiled is None:
                in_sh = tuple(self.shardings(a, k) for a, k in zip(args, in_kinds))
                out_shape = jax.eval_shape(fn, *args)
                if isinstance(out_kinds, str):
                    out_sh = self.shardings(out_shape, out_kinds)
                else:
                    out_sh = tuple(self.shardings(o, k) for o, k in zip(out_shape, out_kinds))
                    if len(out_shape) != len(out_kinds):
                        raise ValueError(
                            f"{len(out_kinds)} out_kinds for a result of {len(out_shape)} parts"
                        )
                compiled = jax.jit(
                    fn,
                    in_shardings=in_sh,
                    out_shardings=out_sh,
                    donate_argnums=tuple(donate_argnums),
                )
                cache[key] = compiled
            return compiled(*args)

        call.__wrapped__ = fn  # type: ignore[attr-defined]
        return call


def jit_maybe_sharded(
    fn: Callable[..., Any],
    layout: Layout | None,
    in_kinds: Sequence[str],
    out_kinds: str | Sequence[str],
    donate_argnums: Sequence[int] = (),
) -> Callable[..., Any]:
    """``layout.jit(...)`` on a mesh, plain ``jax.jit(fn, donate_argnums=...)`` without one.

    The one-line replacement for ``jax.jit`` at each compile site of a trainer.
    """
    if layout is None:
        return jax.jit(fn, donate_argnums=tuple(donate_argnums))
    return layout.jit(fn, in_kinds, out_kinds, donate_argnums)


def sharded_partial(
    jitted: Callable[..., Any],
    layout: Layout | None,
    in_kinds: Sequence[str],
    out_kinds: str | Sequence[str],
    donate_argnums: Sequence[int] = (),
    **static: Any,
) -> Callable[..., Any]:
    """Bind the static keyword arguments of a module-level ``jax.jit`` function, sharded.

    For the trainer's pattern ``@partial(jax.jit, static_argnames=...) def _step(state, batch,
    *, graphdef, cfg)`` + ``make_step(...) = partial(_step, graphdef=..., cfg=...)``:

    * ``layout is None``: exactly ``functools.partial(jitted, **static)`` (unchanged).
    * otherwise: ``layout.jit(partial(jitted.__wrapped__, **static), in_kinds, out_kinds,
      donate_argnums)``, memoised on the layout per (function, static arguments, kinds), so
      equal arguments share one compilation as with the module-level jit.

    ``static`` values must be hashable (they already are: they were static ``jax.jit``
    arguments).
    """
    if layout is None:
        return functools.partial(jitted, **static)
    key = (
        jitted,
        tuple(sorted(static.items())),
        tuple(in_kinds),
        out_kinds if isinstance(out_kinds, str) else tuple(out_kinds),
        tuple(donate_argnums),
    )
    wrapper = layout._wrappers.get(key)
    if wrapper is None:
        fn = getattr(jitted, "__wrapped__", jitted)
        wrapper = layout.jit(functools.partial(fn, **static), in_kinds, out_kinds, donate_argnums)
        layout._wrappers[key] = wrapper
    return wrapper


def _is_float(x: Any) -> bool:
    # jnp.issubdtype understands bfloat16 and typed PRNG keys (which are not floats).
    dtype = _dtype(x)
    return dtype is not None and bool(jnp.issubdtype(dtype, jnp.floating))


def _dtype(x: Any) -> Any:
    dtype = getattr(x, "dtype", None)
    if dtype is None and isinstance(x, (float, int, np.generic)):
        return np.asarray(x).dtype
    return dtype


__all__ = ["KINDS", "Layout", "jit_maybe_sharded", "sharded_partial"]
