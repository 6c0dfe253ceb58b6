"""Registry contract: names, kinds, configs, and config validation."""

import dataclasses

import pytest

from cliffjax.objectives import get_objective, list_objectives

EXPECTED = ("grpo", "dapo", "dr_grpo", "gspo", "cispo", "dispo", "mhpo", "dpo", "rpo")


def test_all_issue_objectives_registered():
    names = list_objectives()
    for name in EXPECTED:
        assert name in names


@pytest.mark.parametrize("name", EXPECTED)
def test_spec_fields(name):
    spec = get_objective(name)
    assert spec.name == name
    assert spec.kind in ("policy", "preference")
    assert isinstance(spec.default_config, spec.config_cls)
    assert dataclasses.is_dataclass(spec.default_config)
    assert spec.config_cls.__dataclass_params__.frozen
    assert "arXiv" in spec.paper
    fields = {f.name for f in dataclasses.fields(spec.config_cls)}
    if spec.kind == "policy":
        assert {"beta", "kl_estimator", "aggregation"} <= fields
        assert spec.advantage in ("group_std", "group_mean", "rloo")
    else:
        assert spec.advantage is None


def test_unknown_name_lists_known():
    with pytest.raises(KeyError, match="grpo"):
        get_objective("nope")


@pytest.mark.parametrize(
    ("name", "field", "bad"),
    [
        ("grpo", "aggregation", "mean"),
        ("grpo", "kl_estimator", "k4"),
        ("grpo", "beta", -1.0),
        ("dapo", "eps_high", -0.1),
        ("grpo", "clip_ratio_c", 0.5),
    ],
)
def test_bad_config_value_names_field(name, field, bad):
    spec = get_objective(name)
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(spec.default_config, **{field: bad})
