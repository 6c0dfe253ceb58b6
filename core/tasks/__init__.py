"""Synthetic tasks with verifiable rewards computed in JAX (no downloads)."""

from core.tasks.arithmetic import AdditionConfig, ArithmeticTask, MultModConfig
from core.tasks.base import Task
from core.tasks.evaluate import evaluate
from core.tasks.many_answers import ManyAnswersConfig, ManyAnswersTask, enumerate_answers
from core.tasks.multi_reward import MultiRewardConfig, MultiRewardTask
from core.tasks.registry import TASKS, get_task, list_tasks, make_task, task_config_cls
from core.tasks.tokenizer import TOKENIZER, CharTokenizer

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
