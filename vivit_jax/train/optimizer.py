"""Optimisation recipes (optax): AdamW / SGD, warm-up + cosine, clipping,
masked weight decay, layer-wise lr decay.

Reads a `specs.OptimizerSpec` (config keys, see defaults.py:
`optimizer.{name, learning_rate, warmup_steps, end_learning_rate, b1, b2, eps,
momentum, weight_decay, clip_grad_norm, layer_decay}` and `train.num_steps`).

The update of a parameter p with gradient g at optimiser step s is

  g' = clip_by_global_norm(g)                       (if clip_grad_norm)
  u  = adam(g') or momentum(g')
  u += weight_decay * p                             (where param_groups says)
  u *= layer_decay ** (num_layers + 1 - layer_id)   (if layer_decay)
  p -= lr(s) * u

with lr(s) rising linearly from 0 to `learning_rate` over `warmup_steps`, then
following a cosine to `end_learning_rate` at `train.num_steps`. For one
optimizer name the state has the same structure whichever options are on
(disabled parts are `optax.identity`, weight decay 0 still masks), so a
checkpoint of one recipe restores under another.
EMA of the parameters is kept by the train step (`ema_update` here).
"""

from typing import Callable, Tuple

import jax
import jax.numpy as jnp
import optax

from vivit_jax.train import param_groups
from vivit_jax.train.specs import OptimizerSpec

OPTIMIZERS = ("adamw", "sgd")


def make_schedule(opt: OptimizerSpec) -> Callable[[jax.Array], jax.Array]:
  """Learning rate per optimiser step: linear warm-up then cosine decay."""
  warmup = int(opt.warmup_steps)
  total = max(int(opt.num_steps), warmup + 1)
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=float(opt.learning_rate), warmup_steps=warmup,
      decay_steps=total, end_value=float(opt.end_learning_rate))


def scale_by_tree(scales) -> optax.GradientTransformation:
  """Multiplies each update by the matching float of `scales` (a params-shaped tree)."""

  def init_fn(params):
    del params
    return optax.EmptyState()

  def update_fn(updates, state, params=None):
    del params
    updates = jax.tree_util.tree_map(lambda u, s: u * jnp.asarray(s, u.dtype), updates, scales)
    return updates, state

  return optax.GradientTransformation(init_fn, update_fn)


def make_optimizer(opt: OptimizerSpec, params) -> Tuple[optax.GradientTransformation, Callable]:
  """The optimiser of `opt` (`config.optimizer`) for a parameter tree.

  Args:
    opt: the optimiser spec (keys in the module docstring).
    params: the parameters, or their shapes (`jax.eval_shape`), boxed or
      unboxed; only paths and ranks are used (weight-decay mask, layer ids).

  Returns:
    `(tx, lr_schedule)`: the transformation and the schedule
    `step -> learning rate` it applies.
  """
  if opt.name not in OPTIMIZERS:
    raise ValueError(f"optimizer.name must be one of {OPTIMIZERS}, got {opt.name!r}")
  schedule = make_schedule(opt)

  clip = optax.clip_by_global_norm(float(opt.clip_grad_norm)) if opt.clip_grad_norm \
      else optax.identity()
  if opt.name == "adamw":
    direction = optax.scale_by_adam(b1=float(opt.b1), b2=float(opt.b2), eps=float(opt.eps))
  else:
    direction = optax.trace(decay=float(opt.momentum)) if opt.momentum \
        else optax.identity()
  decay = optax.add_decayed_weights(float(opt.weight_decay or 0.0),
                                    mask=param_groups.weight_decay_mask(params))
  layer_scale = optax.identity()
  if opt.layer_decay is not None and float(opt.layer_decay) != 1.0:
    layer_scale = scale_by_tree(param_groups.layer_decay_scales(params,
                                                                float(opt.layer_decay)))
  tx = optax.chain(clip, direction, decay, layer_scale,
                   optax.scale_by_learning_rate(schedule))
  return tx, schedule


def ema_update(ema_params, params, decay: float):
  """`decay * ema + (1 - decay) * params`, leafwise, in the EMA's dtype."""
  return jax.tree_util.tree_map(
      lambda e, p: (decay * e + (1.0 - decay) * p.astype(e.dtype)).astype(e.dtype),
      ema_params, params)
