"""Executable checks of reward->policy stability theory.

``python -m cliffjax.theory_checks [--out DIR] [--quick]`` runs every check in :data:`ALL_CHECKS`, prints
a table and writes JSON, a markdown report and figures. Each check is a pure function
``check(size="full"|"small", seed=0) -> CheckRecord``; see docs/theory.md.
"""

from cliffjax.theory_checks.cliff_checks import (
    check_argmax_uhc,
    check_cliff_deterministic,
    check_cliff_uniform,
    check_incomplete_reward,
    check_margin_radius,
    check_q_lipschitz,
    check_tie_breaker,
)
from cliffjax.theory_checks.record import CheckRecord
from cliffjax.theory_checks.related_checks import (
    check_ches,
    check_displacement_rates,
    check_displacement_sign,
    check_dpo_optimum,
    check_ranking_accuracy,
    check_rpo_minimax,
)
from cliffjax.theory_checks.soft_checks import (
    check_effective_reward_lipschitz,
    check_entropy_cost,
    check_kl_tie_breaker,
    check_multi_reward_cliff,
    check_soft_policy_lipschitz,
    check_soft_policy_tree,
    check_softmax_lipschitz,
)
from cliffjax.theory_checks.training_checks import (
    check_clipping_entropy,
    check_entropy_gradient_ascent,
)

ALL_CHECKS = {
    "PC-1": check_q_lipschitz,
    "PC-2": check_argmax_uhc,
    "PC-3": check_margin_radius,
    "PC-4": check_cliff_deterministic,
    "PC-5": check_cliff_uniform,
    "PC-6": check_incomplete_reward,
    "PC-7": check_tie_breaker,
    "PC-8": check_effective_reward_lipschitz,
    "PC-9": check_multi_reward_cliff,
    "PC-10": check_softmax_lipschitz,
    "PC-11": check_soft_policy_lipschitz,
    "PC-11T": check_soft_policy_tree,
    "PC-12": check_entropy_cost,
    "PC-H": check_kl_tie_breaker,
    "TR-1": check_entropy_gradient_ascent,
    "CR-1": check_dpo_optimum,
    "CR-2": check_ranking_accuracy,
    "LD-1": check_displacement_rates,
    "LD-2": check_displacement_sign,
    "LD-3": check_ches,
    "RPO-1": check_rpo_minimax,
    "CL-1": check_clipping_entropy,
}
"""Check id -> check function, in report order."""

__all__ = ["ALL_CHECKS", "CheckRecord"]
