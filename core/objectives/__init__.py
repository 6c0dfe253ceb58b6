"""Objectives as pure functions on arrays (log-probs, masks, advantages in; loss parts out).

Public API (see docs/architecture.md and docs/objectives.md)::

    from core.objectives import get_objective, list_objectives, PolicyBatch, PreferenceBatch
    from core.objectives import compute_advantages, AdvantageConfig, kl_divergence, aggregate
"""

from core.objectives.advantages import ADVANTAGE_ESTIMATORS, AdvantageConfig, compute_advantages
from core.objectives.aggregation import AGGREGATION_MODES, aggregate, finalize_loss
from core.objectives.kl import KL_ESTIMATORS, KL_USAGE, kl_divergence
from core.objectives.registry import ObjectiveSpec, get_objective, list_objectives, register
from core.objectives.shaping import soft_overlong_penalty
from core.objectives.types import PolicyBatch, PreferenceBatch

__all__ = [
    "ADVANTAGE_ESTIMATORS",
    "AGGREGATION_MODES",
    "KL_ESTIMATORS",
    "KL_USAGE",
    "AdvantageConfig",
    "ObjectiveSpec",
    "PolicyBatch",
    "PreferenceBatch",
    "aggregate",
    "compute_advantages",
    "finalize_loss",
    "get_objective",
    "kl_divergence",
    "list_objectives",
    "register",
    "soft_overlong_penalty",
]
