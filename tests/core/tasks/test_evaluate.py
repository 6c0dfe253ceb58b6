"""``evaluate``: batched greedy evaluation equals an unbatched direct computation."""

import jax
import jax.numpy as jnp
import numpy as np

from cliffjax.models import make_policy, preset_config
from cliffjax.tasks import TOKENIZER, evaluate, get_task


def test_evaluate_matches_direct_computation():
    task = get_task("multi_reward", n_eval=40)
    model_cfg = preset_config("tiny", TOKENIZER.vocab_size, n_layers=1)  # fewer ops to compile
    graphdef, params = make_policy(model_cfg, jax.random.key(0))
    result = evaluate(graphdef, params, task, batch_size=16, return_completions=True)
    # 40 prompts in batches of 16: the last batch wraps around and the extra rows are dropped.
    # Reference: the same compiled batch size on slices that need no padding (greedy rows are
    # independent of their batch-mates).
    prompts, meta = task.eval_set()
    parts = [
        evaluate(
            graphdef, params, task, 16, prompts[a:b], {k: v[a:b] for k, v in meta.items()}, True
        )
        for a, b in [(0, 16), (16, 32), (24, 40)]
    ]
    completions = np.concatenate(
        [parts[0]["completions"], parts[1]["completions"], parts[2]["completions"][8:]]
    )
    np.testing.assert_array_equal(result["completions"], completions)
    assert result["n"] == 40 and completions.shape == (40, task.max_new_tokens)
    reward, comps = task.reward(jnp.asarray(completions), jnp.asarray(_mask(completions)), meta)
    np.testing.assert_allclose(result["reward"], float(reward.mean()), rtol=1e-6)
    for name, value in comps.items():
        np.testing.assert_allclose(result[name], float(value.mean()), rtol=1e-6)
    assert result["accuracy"] == result["correct"]
    # Not all-zero: the comparison above is not vacuous.
    assert result["format"] > 0 or result["length"] < 0


def _mask(completions):
    """Sampler-style mask: 1 up to and including the first EOS."""
    is_eos = completions == TOKENIZER.eos_id
    before = np.cumsum(is_eos, axis=1) - is_eos
    return (before == 0).astype(np.int32)
