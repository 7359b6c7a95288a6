"""`layout.difference` names what differs between two optimizer states."""

import jax.numpy as jnp
import optax

from vivit_jax.checkpoints import layout

PARAMS = {"dense": {"kernel": jnp.zeros((3, 4)), "bias": jnp.zeros(4)}}


def test_adamw_against_sgd_names_the_differing_groups():
  adamw = layout.layout(optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(1e-3)).init(PARAMS))
  sgd = layout.layout(optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(1e-3, momentum=0.9)).init(PARAMS))
  assert layout.difference(adamw, sgd) == (
      "only in the checkpoint: 1/0/count, 1/0/mu, 1/0/nu; only in this run: 1/0/trace")


def test_same_names_other_shapes_lists_the_shapes():
  small = layout.layout(optax.adam(1e-3).init(PARAMS))
  wide = layout.layout(optax.adam(1e-3).init({"dense": {"kernel": jnp.zeros((3, 5)),
                                                        "bias": jnp.zeros(4)}}))
  assert layout.difference(small, wide) == (
      "0/mu/dense/kernel checkpoint (3, 4) vs run (3, 5), "
      "0/nu/dense/kernel checkpoint (3, 4) vs run (3, 5)")


def test_missing_section_says_which_side_has_none():
  ema = layout.layout(PARAMS)
  assert layout.difference({}, ema) == "the checkpoint has none, this run has dense/bias, dense/kernel"
  assert layout.difference(ema, {}) == "the checkpoint has dense/bias, dense/kernel, this run has none"
