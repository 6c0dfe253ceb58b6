"""Registry of objectives by name; configs, docs and the trainer read it.

    spec = get_objective("grpo")
    loss_sum, denom, aux = spec.loss(batch, spec.default_config)
    loss_sum, denom, _ = spec.loss(batch, spec.default_config, with_aux=False)  # aux == {}

Every loss takes ``with_aux`` (default True): False builds none of the aux metrics (the
dict is empty) and gives the same ``(loss_sum, denom)`` and gradient, bit for bit; a
trainer asks for them on logging steps only.

Adding an objective is one module plus one :func:`register` call below.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax

from cliffjax.objectives import cispo, dispo, gspo, mhpo, ppo_clip, preference, sapo

Array = jax.Array
LossFn = Callable[..., tuple[Array, Array, dict[str, Array]]]


@dataclasses.dataclass(frozen=True)
class ObjectiveSpec:
    """One registered objective.

    Attributes:
      name: registry key.
      kind: ``"policy"`` (takes a ``PolicyBatch``) or ``"preference"`` (``PreferenceBatch``).
      config_cls: frozen dataclass type of its config.
      default_config: ``config_cls()`` with the paper's defaults.
      loss: ``loss(batch, cfg, with_aux=True) -> (loss_sum, denominator, aux)``; aux is ``{}``
        when ``with_aux`` is False (module docstring).
      advantage: default advantage estimator name (``AdvantageConfig.estimator``) for policy
        objectives, ``None`` for preference objectives.
      paper: arXiv id and equation of the objective.
      kl_field: name of the config field holding the coefficient of the objective's own KL
        term to a reference policy (``"beta"`` for every policy objective), or ``None`` when
        the objective has no KL term (DPO's ``beta`` is a temperature, not a KL weight).
    """

    name: str
    kind: str
    config_cls: type
    default_config: Any
    loss: LossFn
    advantage: str | None
    paper: str
    kl_field: str | None = None

    def kl_coef(self, cfg: Any) -> float:
        """The KL coefficient set in ``cfg`` (0.0 for objectives without a KL term)."""
        return 0.0 if self.kl_field is None else float(getattr(cfg, self.kl_field))

    def with_kl_coef(self, cfg: Any, coef: float) -> Any:
        """``cfg`` with its KL coefficient replaced (``ValueError`` if it has no KL term)."""
        if self.kl_field is None:
            raise ValueError(f"objective {self.name!r} has no KL term to set")
        return dataclasses.replace(cfg, **{self.kl_field: float(coef)})


_REGISTRY: dict[str, ObjectiveSpec] = {}


def register(spec: ObjectiveSpec) -> ObjectiveSpec:
    """Add ``spec``; a name can be registered once."""
    if spec.name in _REGISTRY:
        raise ValueError(f"objective {spec.name!r} is already registered")
    if spec.kind not in ("policy", "preference"):
        raise ValueError(f"kind must be 'policy' or 'preference', got {spec.kind!r}")
    if not isinstance(spec.default_config, spec.config_cls):
        raise ValueError(f"default_config of {spec.name!r} is not a {spec.config_cls.__name__}")
    fields = {f.name for f in dataclasses.fields(spec.config_cls)}
    if spec.kl_field is not None and spec.kl_field not in fields:
        raise ValueError(f"kl_field {spec.kl_field!r} of {spec.name!r} is not a config field")
    _REGISTRY[spec.name] = spec
    return spec


def get_objective(name: str) -> ObjectiveSpec:
    """The spec registered under ``name``; ``KeyError`` listing the known names otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown objective {name!r}; known: {list_objectives()}") from None


def list_objectives() -> tuple[str, ...]:
    """Registered names, in registration order."""
    return tuple(_REGISTRY)


def _spec(name, kind, cfg_cls, loss, advantage, paper) -> ObjectiveSpec:
    kl_field = "beta" if kind == "policy" else None
    return register(ObjectiveSpec(name, kind, cfg_cls, cfg_cls(), loss, advantage, paper, kl_field))


_spec(
    "grpo",
    "policy",
    ppo_clip.GRPOConfig,
    ppo_clip.ppo_clip_loss,
    "group_std",
    "arXiv 2402.03300 eq. 3 (GRPO, DeepSeekMath)",
)
_spec(
    "dapo",
    "policy",
    ppo_clip.DAPOConfig,
    ppo_clip.ppo_clip_loss,
    "group_std",
    "arXiv 2503.14476 eq. 8 (DAPO)",
)
_spec(
    "dr_grpo",
    "policy",
    ppo_clip.DrGRPOConfig,
    ppo_clip.ppo_clip_loss,
    "group_mean",
    "arXiv 2503.20783 §3.2 + Listing 1 (Dr. GRPO, constant MAX_TOKENS normalizer)",
)
_spec(
    "ppo_clip",
    "policy",
    ppo_clip.PPOClipConfig,
    ppo_clip.ppo_clip_loss,
    "group_std",
    "arXiv 1707.06347 eq. 7 (PPO clip surrogate); dual clip arXiv 1912.09729",
)
_spec(
    "gspo",
    "policy",
    gspo.GSPOConfig,
    gspo.gspo_loss,
    "group_std",
    "arXiv 2507.18071 eq. 5-7 (GSPO, sequence-level ratio)",
)
_spec(
    "cispo",
    "policy",
    cispo.CISPOConfig,
    cispo.cispo_loss,
    "group_std",
    "arXiv 2506.13585 §3.1 eq. 4-5, mask eq. 6-7 (CISPO, MiniMax-M1)",
)
_spec(
    "dispo",
    "policy",
    dispo.DISPOConfig,
    dispo.dispo_loss,
    "group_std",
    "arXiv 2602.00983 (DISPO; exact equation from secondary sources)",
)
_spec(
    "mhpo",
    "policy",
    mhpo.MHPOConfig,
    mhpo.mhpo_loss,
    "group_std",
    "arXiv 2603.16929 (MHPO: LFM + DHP; equations from secondary sources)",
)
_spec(
    "dpo",
    "preference",
    preference.DPOConfig,
    preference.dpo_loss,
    None,
    "arXiv 2305.18290 eq. 7 (DPO)",
)
_spec(
    "rpo",
    "preference",
    preference.RPOConfig,
    preference.rpo_loss,
    None,
    "arXiv 2405.16436 Alg. 1 / practical loss of the official code (RPO)",
)
_spec(
    "sapo",
    "policy",
    sapo.SAPOConfig,
    sapo.sapo_loss,
    "group_std",
    "arXiv 2511.20347 (SAPO soft gate; contrast case)",
)
