"""The Hydra schema of the main job, generated from the frozen config dataclasses of ``core/``.

Groups (``conf/<group>/<option>.yaml``):

* ``algo``: the objective. One option per registered objective (``cliffjax.objectives``); its node
  is ``name`` plus the fields of ``spec.config_cls`` with ``spec.default_config`` as defaults.
* ``task``: the task. ``name`` plus the fields of the task's config class (:data:`TASKS`).
* ``model``: ``cliffjax.models.transformer.TransformerConfig`` (``vocab_size`` comes from the task's
  tokenizer, so it is not a field here), or ``model=hf``: ``cliffjax.models.build.HFModelConfig``
  (a checkpoint directory, whose vocabulary must match the task tokenizer's).
* ``trainer``: ``cliffjax.training.config.TrainerConfig`` (warm start, RL, preference, checkpoints).
* ``mesh``: ``cliffjax.distributed.mesh.MeshConfig``.

Top-level keys: ``seed`` and ``run_dir`` (``null`` = Hydra's ``outputs/<date>/<time>``).

How a bad value fails, before any compute:

1. At composition, the structured schema types every field: an unknown key
   (``trainer.rl.stepz=3``) or a wrong type (``trainer.rl.steps=abc``) stops Hydra with the
   full key in the message.
2. :func:`build_config` refuses NaN and ±inf anywhere (:func:`check_finite_numbers`) and
   unknown top-level keys, then turns the composed ``DictConfig`` into the frozen dataclasses;
   each ``__post_init__`` check raises :class:`ConfigError` prefixed with the field's path
   (``trainer.rl.minibatches: minibatches must be ...``), and cross-field checks follow
   (a group of one with a group-normalized advantage, a reward-side KL estimator as a loss).
3. The apps exit with status 2 and one line for all of these (``cliffjax.experiments.app``).

The schema nodes are generated (:func:`schema_of`) from the same dataclasses the code uses, so
defaults and docs live in one place. ``model``, ``trainer`` and ``mesh`` are typed in the
top-level schema (``experiment_schema``). ``algo`` and ``task`` options differ in their fields:
their nodes are stored in Hydra's ConfigStore under ``schema/<group>/<option>`` and each
``conf/<group>/<option>.yaml`` pulls its node in with
``defaults: [/schema/<group>/<option>@_here_, _self_]``, then may override values.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import types
import typing
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from cliffjax.distributed.mesh import MeshConfig
from cliffjax.models.build import HFModelConfig
from cliffjax.models.lora import LoRAConfig
from cliffjax.models.transformer import TransformerConfig
from cliffjax.objectives import get_objective, list_objectives
from cliffjax.objectives.kl import KL_USAGE
from cliffjax.tasks.registry import TASKS
from cliffjax.tasks.registry import make_task as make_task_from_config
from cliffjax.training.config import TrainerConfig


class ConfigError(ValueError):
    """An invalid configuration value; the message starts with the field's dotted path."""


#: Fields of TransformerConfig that are not configurable (set from the task).
MODEL_DERIVED = ("vocab_size",)


# ---------------------------------------------------------------------------------------------
# Schema generation: frozen dataclass -> mutable dataclass OmegaConf understands.


def _omegaconf_type(tp: Any) -> Any:
    """Map a field annotation onto one OmegaConf supports (``X | None`` -> ``Optional[X]``,
    ``Literal[...]`` -> ``str``/``int``, tuples -> ``List``)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        inner = _omegaconf_type(rest[0]) if len(rest) == 1 else Any
        return typing.Optional[inner] if len(rest) < len(args) else inner  # noqa: UP045
    if origin is typing.Literal:
        return type(args[0])
    if origin in (tuple, list):
        return list[_omegaconf_type(args[0])] if args else list[Any]
    return tp


def schema_of(
    cls: type,
    default: Any = None,
    *,
    extra: tuple[tuple[str, type, Any], ...] = (),
    exclude: tuple[str, ...] = (),
) -> type:
    """A non-frozen dataclass mirroring ``cls`` for Hydra, with ``default``'s values.

    Nested dataclass fields become nested schemas; ``extra`` fields ``(name, type, default)``
    come first (e.g. ``name`` of an objective); ``exclude`` drops fields. Validation stays in
    ``cls.__post_init__`` (run by :func:`build_config`); the schema checks keys and types.
    """
    hints = typing.get_type_hints(cls)
    fields: list[tuple[str, Any, Any]] = [
        (
            n,
            t,
            dataclasses.field(default_factory=t)
            if dataclasses.is_dataclass(t)
            else dataclasses.field(default=v),
        )
        for n, t, v in extra
    ]
    for f in dataclasses.fields(cls):
        if f.name in exclude:
            continue
        if default is not None:
            value = getattr(default, f.name)
        elif f.default is not dataclasses.MISSING:
            value = f.default
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
        else:
            value = MISSING
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            sub = schema_of(tp, value if value is not MISSING else None)
            fields.append((f.name, sub, dataclasses.field(default_factory=sub)))
            continue
        tp = _omegaconf_type(tp)
        if isinstance(value, (tuple, list)):
            fields.append((f.name, tp, dataclasses.field(default_factory=lambda v=value: list(v))))
        else:
            fields.append((f.name, tp, dataclasses.field(default=value)))
    return dataclasses.make_dataclass(f"{cls.__name__}Schema", fields)


def experiment_schema() -> type:
    """The top-level schema: ``seed``, ``run_dir`` and one node per group.

    ``model``, ``trainer`` and ``mesh`` have one config class each, so their nodes are typed
    here; ``algo`` and ``task`` differ per option and are typed by the option's schema node.
    """
    # ``name``/``path`` select a pretrained checkpoint (``model=hf``: conf/model/hf.yaml).
    model = schema_of(
        TransformerConfig,
        TransformerConfig(vocab_size=1),
        exclude=MODEL_DERIVED,
        extra=(
            ("name", str, "transformer"),
            ("path", typing.Optional[str], None),  # noqa: UP045
            ("lora", schema_of(LoRAConfig), None),  # model=hf only (model.lora.rank > 0)
        ),
    )
    trainer = schema_of(TrainerConfig)
    mesh = schema_of(MeshConfig)
    return dataclasses.make_dataclass(
        "ExperimentSchema",
        [
            ("seed", int, dataclasses.field(default=0)),
            ("run_dir", typing.Optional[str], dataclasses.field(default=None)),  # noqa: UP045
            ("algo", Any, dataclasses.field(default=MISSING)),
            ("task", Any, dataclasses.field(default=MISSING)),
            ("model", model, dataclasses.field(default_factory=model)),
            ("trainer", trainer, dataclasses.field(default_factory=trainer)),
            ("mesh", mesh, dataclasses.field(default_factory=mesh)),
        ],
    )


def _run_dir_or_default(run_dir: Any, default: str) -> str:
    return str(run_dir) if run_dir else default


def register_configs() -> None:
    """Store the schemas in Hydra's ConfigStore (idempotent) and register resolvers."""
    if not OmegaConf.has_resolver("run_dir_or"):
        OmegaConf.register_new_resolver("run_dir_or", _run_dir_or_default)
    cs = ConfigStore.instance()
    cs.store(name="experiment_schema", node=experiment_schema())
    for name in list_objectives():
        spec = get_objective(name)
        node = schema_of(spec.config_cls, spec.default_config, extra=(("name", str, name),))
        cs.store(group="schema/algo", name=name, node=node)
    for name, (cfg_cls, _) in TASKS.items():
        cs.store(
            group="schema/task", name=name, node=schema_of(cfg_cls, extra=(("name", str, name),))
        )


# ---------------------------------------------------------------------------------------------
# DictConfig -> frozen dataclasses.


@dataclasses.dataclass(frozen=True)
class AlgoChoice:
    """The objective of a run.

    Attributes:
      name: registered objective name.
      config: its ``spec.config_cls`` instance.
    """

    name: str
    config: Any


@dataclasses.dataclass(frozen=True)
class TaskChoice:
    """The task of a run.

    Attributes:
      name: a key of :data:`TASKS`.
      config: its config dataclass instance.
    """

    name: str
    config: Any


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """A validated run configuration.

    Attributes:
      seed: seed of model init, data and sampling.
      run_dir: output directory (``None`` until the driver picks Hydra's).
      algo: the objective.
      task: the task.
      model: the policy's transformer config (``vocab_size`` from the task's tokenizer), or
        the ``HFModelConfig`` of a checkpoint (whose vocabulary must match the task's).
      trainer: warm start, RL / preference loop, checkpoints.
      mesh: the device mesh (one device by default).
    """

    seed: int
    run_dir: str | None
    algo: AlgoChoice
    task: TaskChoice
    model: TransformerConfig | HFModelConfig
    trainer: TrainerConfig
    mesh: MeshConfig


def to_dataclass(cls: type, values: dict[str, Any], path: str, **fixed: Any) -> Any:
    """Build ``cls`` from a plain dict, recursing into dataclass fields.

    Unknown keys and ``__post_init__`` errors raise :class:`ConfigError` prefixed with the
    dotted ``path`` of the field; ``fixed`` adds values that are not user-configurable.
    """
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"{path}.{unknown[0]}: unknown field (known: {sorted(names)})")
    kwargs: dict[str, Any] = dict(fixed)
    for key, value in values.items():
        tp = hints[key]
        if dataclasses.is_dataclass(tp) and isinstance(value, dict):
            value = to_dataclass(tp, value, f"{path}.{key}")
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as e:
        if isinstance(e, ConfigError):
            raise
        msg = str(e)
        # "<field> must be ..." or "<Class>.<field> must be ..." -> "<path>.<field> must be ..."
        m = re.match(rf"^(?:{cls.__name__}\.)?(\w+)(.*)$", msg, flags=re.DOTALL)
        if m and m.group(1) in names:
            raise ConfigError(f"{path}.{m.group(1)}{m.group(2)}") from e
        raise ConfigError(f"{path}: {msg}") from e


def build_config(cfg: DictConfig | dict[str, Any]) -> ExperimentConfig:
    """Validate a composed config and return the frozen :class:`ExperimentConfig`.

    Raises :class:`ConfigError` naming the field for any invalid value (nothing is computed).
    The model's ``vocab_size`` is taken from the task's tokenizer, and ``model.max_seq_len`` must
    hold a prompt plus its completion.
    """
    raw = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    raw = {k: v for k, v in raw.items() if k != "hydra"}
    check_finite_numbers(raw)
    known = {f.name for f in dataclasses.fields(ExperimentConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown top-level key (known: {sorted(known)})")
    algo_raw = dict(raw["algo"])
    algo_name = algo_raw.pop("name")
    try:
        spec = get_objective(algo_name)
    except KeyError as e:
        raise ConfigError(f"algo.name: {e.args[0]}") from None
    algo = AlgoChoice(algo_name, to_dataclass(spec.config_cls, algo_raw, "algo"))
    task_raw = dict(raw["task"])
    task_name = task_raw.pop("name")
    if task_name not in TASKS:
        raise ConfigError(f"task.name: unknown task {task_name!r}; known: {sorted(TASKS)}")
    task = TaskChoice(task_name, to_dataclass(TASKS[task_name][0], task_raw, "task"))
    try:  # a task may read files (text datasets, tokenizers): their errors are config errors
        vocab = make_task(task).tokenizer.vocab_size
    except (ValueError, KeyError, OSError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        raise ConfigError(msg if msg.startswith("task.") else f"task: {msg}") from e
    model_raw = dict(raw["model"])
    model_name, model_path = model_raw.pop("name", "transformer"), model_raw.pop("path", None)
    lora_raw = dict(model_raw.pop("lora", None) or {})
    if model_name == "hf":
        fields = {"path": model_path, "dtype": model_raw.get("dtype", "float32")}
        fields["param_dtype"] = model_raw.get("param_dtype")
        fields["lora"] = lora_raw
        model = to_dataclass(HFModelConfig, fields, "model")
    elif lora_raw.get("rank"):
        raise ConfigError(
            "model.lora.rank: LoRA adapters are implemented for model=hf (Llama / Qwen "
            "checkpoints); the built-in transformer trains all of its parameters (use "
            "model.lora.rank=0)"
        )
    elif model_name == "transformer":
        model = to_dataclass(TransformerConfig, model_raw, "model", vocab_size=vocab)
    else:
        raise ConfigError(f"model.name: expected 'transformer' or 'hf', got {model_name!r}")
    trainer = to_dataclass(TrainerConfig, dict(raw["trainer"]), "trainer")
    mesh = to_dataclass(MeshConfig, dict(raw["mesh"]), "mesh")
    seed = raw.get("seed", 0)
    if not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed: must be an int >= 0, got {seed!r}")
    exp = ExperimentConfig(seed, raw.get("run_dir"), algo, task, model, trainer, mesh)
    _check_consistency(exp)
    return exp


def check_finite_numbers(tree: Any, path: str = "") -> None:
    """Raise :class:`ConfigError` naming the first field (or list element) holding NaN or ±inf.

    No field of any config means "infinite" (0 or ``null`` switch things off), and a NaN or inf
    learning rate, weight or clip range would only surface as a non-finite loss mid-run.
    """
    if isinstance(tree, dict):
        for k, v in tree.items():
            check_finite_numbers(v, f"{path}.{k}" if path else str(k))
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            check_finite_numbers(v, f"{path}[{i}]")
    elif isinstance(tree, float) and not math.isfinite(tree):
        raise ConfigError(f"{path}: must be a finite number, got {tree}")


@functools.lru_cache(maxsize=16)
def make_task(choice: TaskChoice) -> Any:
    """The task object of a validated choice (cached: equal choices give the same object, so
    jit'd steps that take the task as a static argument compile once per process)."""
    return make_task_from_config(choice.config)


def _check_hf_checkpoint(model: HFModelConfig, task: Any, task_name: str, need: int) -> None:
    """The checkpoint of ``model=hf`` must be readable, embed every id of the task's tokenizer
    and hold a prompt plus its completion.

    The vocabularies must agree: equal sizes, or a tokenizer smaller than the embedding table
    when the checkpoint's own ``tokenizer.json`` is that tokenizer's size (checkpoints such as
    Qwen2.5 pad the table past the tokenizer's last id).
    """
    from cliffjax.models.llama.config import from_hf_config
    from cliffjax.models.llama.params import read_config

    try:
        hf = from_hf_config(read_config(model.path), model.dtype, model.param_dtype)
    except (OSError, ValueError, KeyError) as e:
        raise ConfigError(f"model.path: {e}") from None
    n_tok, n_model = task.tokenizer.vocab_size, hf.vocab_size
    if n_tok != n_model:
        own = None
        if n_tok < n_model:
            from cliffjax.tokenizers import HFTokenizer

            try:
                own = HFTokenizer.from_dir(model.path).vocab_size
            except (OSError, ValueError):
                own = None
        if own != n_tok:
            raise ConfigError(
                f"model.path: the checkpoint's vocab_size is {n_model} but task {task_name!r} "
                f"uses a tokenizer of {n_tok} ids (tokenizer.vocab_size); train it on a task "
                "with the checkpoint's tokenizer, or on a checkpoint built for this tokenizer"
            )
    if hf.max_position_embeddings < need:
        raise ConfigError(
            f"model.path: the checkpoint's max_position_embeddings={hf.max_position_embeddings} "
            f"must be >= prompt_len + max_new_tokens = {need} for task {task_name!r}"
        )


def _check_consistency(exp: ExperimentConfig) -> None:
    """Cross-field checks that no single dataclass can make."""
    task = make_task(exp.task)
    need = task.prompt_len + task.max_new_tokens
    if isinstance(exp.model, HFModelConfig):
        _check_hf_checkpoint(exp.model, task, exp.task.name, need)
    if exp.trainer.export_hf and not isinstance(exp.model, HFModelConfig):
        raise ConfigError(
            "trainer.export_hf: exports a Hugging Face checkpoint, which needs model=hf (the "
            "built-in transformer has no Hugging Face architecture)"
        )
    if isinstance(exp.model, TransformerConfig) and exp.model.max_seq_len < need:
        raise ConfigError(
            f"model.max_seq_len: must be >= prompt_len + max_new_tokens = {need} for task "
            f"{exp.task.name!r}, got {exp.model.max_seq_len}"
        )
    if exp.trainer.rl.overlong_buffer > task.max_new_tokens:
        raise ConfigError(
            "trainer.rl.overlong_buffer: must be <= the generation budget max_new_tokens = "
            f"{task.max_new_tokens} of task {exp.task.name!r}, got {exp.trainer.rl.overlong_buffer}"
        )
    spec = get_objective(exp.algo.name)
    rl = exp.trainer.rl
    if spec.kind == "policy" and rl.steps > 0 and rl.group_size < 2:
        estimator = rl.advantage or spec.advantage
        source = "trainer.rl.advantage" if rl.advantage else f"the default of {exp.algo.name!r}"
        raise ConfigError(
            f"trainer.rl.group_size: must be >= 2 with the {estimator!r} advantage estimator "
            f"({source}), got {rl.group_size}: advantages are normalized within a prompt's "
            "group, so a group of one gives every advantage 0 (or 0/0) and nothing is learned"
        )
    estimator = getattr(exp.algo.config, "kl_estimator", None)
    if (
        estimator is not None
        and getattr(exp.algo.config, "beta", 0.0) > 0
        and "loss" not in KL_USAGE.get(estimator, ("loss",))
    ):
        loss_ok = [k for k, uses in KL_USAGE.items() if "loss" in uses]
        raise ConfigError(
            f"algo.kl_estimator: {estimator!r} is a reward-side estimator, but "
            f"{exp.algo.name!r} adds the KL to the loss (algo.beta = {exp.algo.config.beta}), "
            "where its expected gradient is 0 (docs/objectives.md, KL estimators); use one of "
            f"{loss_ok}, or algo.beta=0"
        )
    pref = exp.trainer.preference
    if spec.kind == "preference" and getattr(task, "padded_prompts", False):
        raise ConfigError(
            f"algo.name: the preference objective {exp.algo.name!r} runs on fixed-width prompts; "
            f"task {exp.task.name!r} has variable-length prompts (use a policy objective)"
        )
    if spec.kind == "preference" and pref.source == "dataset" and not task.has_flawed_teacher:
        raise ConfigError(
            "trainer.preference.source: 'dataset' needs a task with a flawed-teacher answer "
            f"(addition); task {exp.task.name!r} has none"
        )
    if spec.kind == "policy" and exp.trainer.nan_at_step >= exp.trainer.rl.steps > 0:
        raise ConfigError(
            f"trainer.nan_at_step: must be < trainer.rl.steps = {exp.trainer.rl.steps}, got "
            f"{exp.trainer.nan_at_step}"
        )


def experiment_to_dict(exp: ExperimentConfig) -> dict[str, Any]:
    """A JSON/YAML-friendly dict of a validated config (what ``config.yaml`` in the run holds)."""
    out = dataclasses.asdict(exp)
    out["algo"] = {"name": exp.algo.name, **dataclasses.asdict(exp.algo.config)}
    out["task"] = {"name": exp.task.name, **dataclasses.asdict(exp.task.config)}
    return out
