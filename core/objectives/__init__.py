"""Objectives as pure functions on arrays (log-probs, masks, advantages in; loss parts out).

Public API (see docs/architecture.md and docs/objectives.md)::

    from cliffjax.objectives import get_objective, list_objectives, PolicyBatch, PreferenceBatch
    from cliffjax.objectives import compute_advantages, AdvantageConfig, kl_divergence, aggregate
"""

from cliffjax.objectives.advantages import ADVANTAGE_ESTIMATORS, AdvantageConfig, compute_advantages
from cliffjax.objectives.aggregation import AGGREGATION_MODES, aggregate, finalize_loss
from cliffjax.objectives.kl import KL_ESTIMATORS, KL_USAGE, kl_divergence
from cliffjax.objectives.registry import ObjectiveSpec, get_objective, list_objectives, register
from cliffjax.objectives.shaping import soft_overlong_penalty
from cliffjax.objectives.types import PolicyBatch, PreferenceBatch

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
