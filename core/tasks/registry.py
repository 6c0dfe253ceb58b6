"""Tasks by name, so a Hydra config can pick one: ``get_task("addition", n_digits=2)``."""

from __future__ import annotations

import dataclasses
from typing import Any

from cliffjax.tasks.arithmetic import AdditionConfig, ArithmeticTask, MultModConfig
from cliffjax.tasks.base import Task
from cliffjax.tasks.many_answers import ManyAnswersConfig, ManyAnswersTask
from cliffjax.tasks.multi_reward import MultiRewardConfig, MultiRewardTask
from cliffjax.tasks.text import TextTask, TextTaskConfig

# name -> (config class, task class)
TASKS: dict[str, tuple[type, type]] = {
    "addition": (AdditionConfig, ArithmeticTask),
    "mult_mod": (MultModConfig, ArithmeticTask),
    "many_answers": (ManyAnswersConfig, ManyAnswersTask),
    "multi_reward": (MultiRewardConfig, MultiRewardTask),
    "jsonl": (TextTaskConfig, TextTask),
}


def list_tasks() -> list[str]:
    """Registered task names."""
    return sorted(TASKS)


def task_config_cls(name: str) -> type:
    """The frozen config dataclass of a task (for building Hydra schemas)."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; expected one of {list_tasks()}")
    return TASKS[name][0]


def get_task(name: str, **overrides: Any) -> Task:
    """Build a task by name; ``overrides`` are fields of its config (unknown ones raise)."""
    cfg_cls = task_config_cls(name)
    fields = {f.name for f in dataclasses.fields(cfg_cls)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"unknown field(s) {unknown} for task {name!r}; valid: {sorted(fields)}")
    return make_task(cfg_cls(**overrides))


def make_task(cfg: Any) -> Task:
    """Build the task that matches a config instance."""
    for cfg_cls, task_cls in TASKS.values():
        if type(cfg) is cfg_cls:
            return task_cls(cfg)
    raise ValueError(f"no task takes a config of type {type(cfg).__name__}")
