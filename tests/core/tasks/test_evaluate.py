"""``evaluate``: batched greedy evaluation equals an unbatched direct computation."""

import jax
import numpy as np

from core.models import make_policy, preset_config
from core.sampling import SamplingConfig, sample
from core.tasks import TOKENIZER, evaluate, get_task


def test_evaluate_matches_direct_computation():
    task = get_task("multi_reward", n_eval=40)
    model_cfg = preset_config("tiny", TOKENIZER.vocab_size, n_layers=1)  # fewer ops to compile
    graphdef, params = make_policy(model_cfg, jax.random.key(0))
    result = evaluate(
        graphdef, params, task, batch_size=16, return_completions=True
    )  # 3 batches, last padded
    prompts, meta = task.eval_set()
    cfg = SamplingConfig(
        task.max_new_tokens, temperature=0.0, eos_id=TOKENIZER.eos_id, pad_id=TOKENIZER.pad_id
    )
    out = sample(graphdef, params, prompts, jax.random.key(0), cfg)
    reward, comps = task.reward(out.completion, out.completion_mask, meta)
    np.testing.assert_array_equal(result["completions"], np.asarray(out.completion))
    assert result["n"] == 40
    np.testing.assert_allclose(result["reward"], float(reward.mean()), rtol=1e-6)
    for name, value in comps.items():
        np.testing.assert_allclose(result[name], float(value.mean()), rtol=1e-6)
    assert result["accuracy"] == result["correct"]
