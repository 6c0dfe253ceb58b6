"""Synthetic tasks with verifiable rewards computed in JAX (no downloads)."""

from cliffjax.tasks.arithmetic import AdditionConfig, ArithmeticTask, MultModConfig
from cliffjax.tasks.base import Task
from cliffjax.tasks.evaluate import evaluate
from cliffjax.tasks.many_answers import ManyAnswersConfig, ManyAnswersTask, enumerate_answers
from cliffjax.tasks.multi_reward import MultiRewardConfig, MultiRewardTask
from cliffjax.tasks.registry import TASKS, get_task, list_tasks, make_task, task_config_cls
from cliffjax.tokenizers.char import TOKENIZER, CharTokenizer

__all__ = [
    "TASKS",
    "TOKENIZER",
    "AdditionConfig",
    "ArithmeticTask",
    "CharTokenizer",
    "ManyAnswersConfig",
    "ManyAnswersTask",
    "MultModConfig",
    "MultiRewardConfig",
    "MultiRewardTask",
    "Task",
    "enumerate_answers",
    "evaluate",
    "get_task",
    "list_tasks",
    "make_task",
    "task_config_cls",
]
