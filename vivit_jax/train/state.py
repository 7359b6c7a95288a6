"""The training state: one pytree of arrays, nothing static.

Fields:
  step        int32 scalar, the number of train steps taken (batches consumed,
              including steps skipped for a non-finite loss).
  params      the model parameters, unboxed, float32 (`param_dtype`).
  opt_state   the optax state of `optimizer.make_optimizer`.
  ema_params  an exponential moving average of `params` (same tree, float32),
              or None when `optimizer.ema_decay` is None.
  rng         raw PRNG key data, `uint32[2]` (threefry), constant over
              training: step `s` uses `jax.random.fold_in(key, s)`. Raw data
              checkpoints as an ordinary array; `key()` wraps it.

The state holds no functions (the model and optimiser are rebuilt from the
config), so it checkpoints and restores as a plain tree.
"""

from typing import Any, Optional

import flax.struct
import jax


class TrainState(flax.struct.PyTreeNode):
  """See the module docstring."""

  step: jax.Array
  params: Any
  opt_state: Any
  ema_params: Optional[Any]
  rng: jax.Array

  def key(self) -> jax.Array:
    """The base PRNG key as a typed key array."""
    return jax.random.wrap_key_data(self.rng)


def as_key_data(rng) -> jax.Array:
  """Raw `uint32` key data from an int seed, a typed key or raw key data."""
  if isinstance(rng, int):
    rng = jax.random.key(rng)
  if jax.dtypes.issubdtype(rng.dtype, jax.dtypes.prng_key):
    return jax.random.key_data(rng)
  return rng
