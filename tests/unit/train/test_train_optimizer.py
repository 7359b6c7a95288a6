"""Optimiser recipes: schedule, clipping, masked weight decay, layer-wise lr decay."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vivit_jax.models import build_model
from vivit_jax.train import param_groups
from vivit_jax.train.defaults import default_train_config
from vivit_jax.train.optimizer import ema_update, make_optimizer, make_schedule
from vivit_jax.train.steps import global_norm
from vivit_jax.train.specs import OptimizerSpec


def _config(**optimizer):
  config = default_train_config()
  config.train.num_steps = 100
  config.optimizer.warmup_steps = 0
  config.optimizer.weight_decay = 0.0
  for key, value in optimizer.items():
    setattr(config.optimizer, key, value)
  return config


def _param_shapes(**model):
  base = dict(hidden_size=16, num_layers=2, num_heads=2, mlp_dim=32, patch_size=8,
              tubelet_size=2)
  if model.get("name", "vivit") == "vivit":
    base["num_classes"] = 3
  model = build_model(dict(base, **model))
  video = jnp.zeros((1, 4, 16, 16, 3))
  if model.__class__.__name__ == "MaskedVideoAutoencoder":
    mask = jnp.arange(8)[None] < 4
    return jax.eval_shape(lambda: model.init(jax.random.key(0), video, mask))["params"]
  return jax.eval_shape(lambda: model.init(jax.random.key(0), video))["params"]


def _flat(tree):
  return {"/".join(param_groups.path_names(p)): v
          for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _toy_params():
  return {
      "embedding": {"projection": {"kernel": jnp.ones((2, 3)), "bias": jnp.ones((3,))}},
      "pos_embedding": {"embedding": jnp.ones((4, 3))},
      "cls_token": jnp.ones((1, 1, 3)),
      "encoder": {"block_00": {"mlp": {"fc1": {"kernel": jnp.ones((3, 3))}},
                               "norm_mlp": {"scale": jnp.ones((3,))}}},
      "head": {"kernel": jnp.ones((3, 2))},
  }


def test_schedule_warms_up_then_follows_cosine():
  config = _config(learning_rate=1.0, warmup_steps=10, end_learning_rate=0.1)
  schedule = make_schedule(OptimizerSpec.from_config(config))
  np.testing.assert_allclose(schedule(0), 0.0)
  np.testing.assert_allclose(schedule(5), 0.5, rtol=1e-6)
  np.testing.assert_allclose(schedule(10), 1.0, rtol=1e-6)
  np.testing.assert_allclose(schedule(55), 0.55, rtol=1e-5)  # cosine midpoint
  np.testing.assert_allclose(schedule(100), 0.1, rtol=1e-5)


def test_weight_decay_mask_by_path_vivit_and_videomae():
  vivit = _flat(param_groups.weight_decay_mask(_param_shapes(variant="factorised_encoder",
                                                             temporal_layers=1)))
  assert vivit["embedding/projection/kernel"]
  assert vivit["encoder/block_00/attention/query/kernel"]
  assert vivit["head/kernel"]
  for name in ("embedding/projection/bias", "encoder/block_00/norm_mlp/scale",
               "pos_embedding/embedding", "temporal_pos_embedding/embedding",
               "cls_token", "temporal_cls_token", "encoder/block_00/attention/query/bias"):
    assert not vivit[name], name
  mae = _flat(param_groups.weight_decay_mask(_param_shapes(name="videomae",
                                                           decoder_hidden_size=8,
                                                           decoder_layers=1, decoder_heads=2,
                                                           decoder_mlp_dim=16,
                                                           pos_embedding="learned")))
  assert not mae["mask_token"]
  assert not mae["decoder_pos_embedding/embedding"]
  assert mae["encoder_to_decoder/kernel"]


def test_layer_ids_factorised_encoder():
  ids, num_layers = param_groups.layer_ids(_param_shapes(variant="factorised_encoder",
                                                         temporal_layers=2))
  ids = _flat(ids)
  assert num_layers == 4
  expected = {
      "embedding/projection/kernel": 0, "cls_token": 0, "pos_embedding/embedding": 0,
      "encoder/block_00/mlp/fc1/kernel": 1, "encoder/block_01/mlp/fc1/kernel": 2,
      "encoder/norm/scale": 3, "temporal_cls_token": 2,
      "temporal_pos_embedding/embedding": 2,
      "temporal_encoder/block_00/mlp/fc1/kernel": 3,
      "temporal_encoder/block_01/attention/out/kernel": 4,
      "temporal_encoder/norm/scale": 5, "head/kernel": 5,
  }
  for name, layer in expected.items():
    assert ids[name] == layer, name
  scales = _flat(param_groups.layer_decay_scales(
      _param_shapes(variant="factorised_encoder", temporal_layers=2), 0.5))
  assert scales["embedding/projection/kernel"] == 0.5 ** 5
  assert scales["head/kernel"] == 1.0


def test_layer_decay_scales_sgd_updates():
  params = _toy_params()
  config = _config(name="sgd", momentum=0.0, learning_rate=0.1, layer_decay=0.5)
  tx, _ = make_optimizer(OptimizerSpec.from_config(config), params)
  grads = jax.tree_util.tree_map(jnp.ones_like, params)
  updates, _ = jax.jit(tx.update)(grads, tx.init(params), params)
  # One encoder block: embedding 0 -> 0.5**2, block_00 -> 0.5, head -> 1.
  np.testing.assert_allclose(updates["embedding"]["projection"]["kernel"], -0.1 * 0.25)
  np.testing.assert_allclose(updates["cls_token"], -0.1 * 0.25)
  np.testing.assert_allclose(updates["encoder"]["block_00"]["mlp"]["fc1"]["kernel"], -0.05)
  np.testing.assert_allclose(updates["head"]["kernel"], -0.1)


def test_weight_decay_skips_biases_norms_tokens_and_positions():
  params = _toy_params()
  config = _config(learning_rate=0.1, weight_decay=0.5)
  tx, _ = make_optimizer(OptimizerSpec.from_config(config), params)
  zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
  updates, _ = jax.jit(tx.update)(zeros, tx.init(params), params)
  new = optax.apply_updates(params, updates)
  np.testing.assert_allclose(new["head"]["kernel"], 1.0 - 0.1 * 0.5, rtol=1e-6)
  np.testing.assert_allclose(new["embedding"]["projection"]["kernel"], 0.95, rtol=1e-6)
  for unchanged in (new["embedding"]["projection"]["bias"], new["pos_embedding"]["embedding"],
                    new["cls_token"], new["encoder"]["block_00"]["norm_mlp"]["scale"]):
    np.testing.assert_array_equal(unchanged, 1.0)


def test_clip_by_global_norm():
  params = _toy_params()
  config = _config(name="sgd", momentum=0.0, learning_rate=1.0, clip_grad_norm=1.0)
  tx, _ = make_optimizer(OptimizerSpec.from_config(config), params)
  grads = jax.tree_util.tree_map(lambda p: 100.0 * jnp.ones_like(p), params)
  updates, _ = jax.jit(tx.update)(grads, tx.init(params), params)
  np.testing.assert_allclose(global_norm(updates), 1.0, rtol=1e-5)
  small = jax.tree_util.tree_map(lambda p: 1e-3 * jnp.ones_like(p), params)
  updates, _ = jax.jit(tx.update)(small, tx.init(params), params)
  chex.assert_trees_all_close(updates, jax.tree_util.tree_map(lambda g: -g, small))


def test_adamw_first_step_and_state_structure_independent_of_options():
  params = _toy_params()
  plain, _ = make_optimizer(OptimizerSpec.from_config(_config(learning_rate=0.01)), params)
  full, _ = make_optimizer(OptimizerSpec.from_config(_config(learning_rate=0.01,
                                                             clip_grad_norm=1.0, weight_decay=0.1,
                                   layer_decay=0.7)), params)
  assert (jax.tree_util.tree_structure(plain.init(params))
          == jax.tree_util.tree_structure(full.init(params)))
  grads = jax.tree_util.tree_map(lambda p: 0.3 * jnp.ones_like(p), params)
  updates, _ = jax.jit(plain.update)(grads, plain.init(params), params)
  # Adam's first bias-corrected step is lr * sign(g).
  np.testing.assert_allclose(updates["head"]["kernel"], -0.01, rtol=1e-4)


def test_unknown_optimizer_name_fails():
  with pytest.raises(ValueError, match="optimizer.name"):
    make_optimizer(OptimizerSpec.from_config(_config(name="lamb")), _toy_params())


def test_ema_update():
  ema = {"w": jnp.array([1.0, 2.0])}
  params = {"w": jnp.array([3.0, 6.0])}
  out = ema_update(ema, params, 0.75)
  np.testing.assert_allclose(out["w"], [1.5, 3.0])
