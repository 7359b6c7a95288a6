"""Random parameters for a Flax layer, and a jitted apply: the contract tests'
way to check a layer against a NumPy reference with non-trivial weights."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def random_params(layer: nn.Module, *inputs, seed: int = 1, scale: float = 0.5):
  """N(0, scale^2) parameters of the shapes `layer.init` makes for `inputs`
  (shapes only: nothing of `init` is compiled)."""
  shapes = nn.unbox(jax.eval_shape(layer.init, jax.random.PRNGKey(0), *inputs)["params"])
  rng = np.random.default_rng(seed)
  return jax.tree_util.tree_map(
      lambda a: jnp.asarray(scale * rng.standard_normal(a.shape), a.dtype), shapes)


def jit_apply(layer: nn.Module, params, *inputs, **kwargs):
  """`layer.apply({"params": params}, *inputs, **kwargs)` under `jax.jit`."""
  return jax.jit(lambda p, *a: layer.apply({"params": p}, *a, **kwargs))(params, *inputs)
