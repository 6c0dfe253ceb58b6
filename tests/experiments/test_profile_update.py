"""The update-step profiler's HLO parsing and op categories (no trace; one tiny compile)."""

import jax
import jax.numpy as jnp

from cliffjax.experiments import profile_update


def test_hlo_instructions_are_parsed_and_categorised():
    a = jnp.ones((8, 16), jnp.float32)
    b = jnp.ones((16, 4), jnp.float32)
    text = jax.jit(lambda a, b: jnp.concatenate([a @ b, a[:, :4]], 1).sum(0)).lower(a, b)
    instrs, comps = profile_update.parse_hlo(text.compile().as_text())
    cats = {profile_update.category(ins, comps) for ins in instrs.values()}
    assert "matmul (dot)" in cats
    assert cats <= set(profile_update.CATEGORIES)
    assert profile_update.category(None, comps) == "other"
    assert profile_update._short_op_name("jit(update_phase)/while/body/closed_call/jvp()/mul") == (
        "jvp()/mul"
    )
