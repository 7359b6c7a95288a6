"""Transformer blocks (models/layers.py) against compositions of their own
parts: pre-norm residual order, which tokens each factorised half mixes,
LayerNorm epsilon, activations, stochastic depth and its per-layer schedule."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from support import random_params
from vivit_jax.models import attention, layers

D, HEADS, MLP = 8, 2, 16
EPS = 0.5  # large, so a wrong epsilon shows


_params = random_params.random_params
_apply = random_params.jit_apply


def _ln(x, p, eps=EPS):
  x = np.asarray(x, np.float64)
  mean = x.mean(-1, keepdims=True)
  var = x.var(-1, keepdims=True)
  return (x - mean) / np.sqrt(var + eps) * np.asarray(p["scale"]) + np.asarray(p["bias"])


def _mlp(x, p):
  h = np.asarray(x, np.float64) @ np.asarray(p["fc1"]["kernel"]) + np.asarray(p["fc1"]["bias"])
  h = np.asarray(layers.ACTIVATIONS["gelu"](jnp.asarray(h)), np.float64)
  return h @ np.asarray(p["fc2"]["kernel"]) + np.asarray(p["fc2"]["bias"])


def _mha(x, p, cls=attention.MultiHeadAttention):
  return np.asarray(_apply(cls(num_heads=HEADS), p, jnp.asarray(x, jnp.float32)), np.float64)


def _block(block_type, **kwargs):
  return layers.EncoderBlock(block_type=block_type, num_heads=HEADS, mlp_dim=MLP,
                             layer_norm_eps=EPS, **kwargs)


def test_activations_are_the_named_functions():
  x = jnp.linspace(-3.0, 3.0, 13)
  xs = np.asarray(x, np.float64)
  from math import erf  # pylint: disable=import-outside-toplevel
  exact = xs * 0.5 * (1 + np.array([erf(v / np.sqrt(2)) for v in xs]))
  tanh = 0.5 * xs * (1 + np.tanh(np.sqrt(2 / np.pi) * (xs + 0.044715 * xs ** 3)))
  np.testing.assert_allclose(layers.ACTIVATIONS["gelu"](x), exact, atol=1e-6)
  np.testing.assert_allclose(layers.ACTIVATIONS["gelu_tanh"](x), tanh, atol=1e-6)
  assert np.abs(exact - tanh).max() > 1e-4
  np.testing.assert_allclose(layers.ACTIVATIONS["relu"](x), np.maximum(xs, 0))
  np.testing.assert_allclose(layers.ACTIVATIONS["silu"](x), xs / (1 + np.exp(-xs)), atol=1e-6)


def test_joint_block_is_pre_norm_attention_then_pre_norm_mlp():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 5, D))
  block = _block("joint")
  p = _params(block, x)
  y = np.asarray(x, np.float64)
  y = y + _mha(_ln(y, p["norm_attention"]), p["attention"])
  y = y + _mlp(_ln(y, p["norm_mlp"]), p["mlp"])
  np.testing.assert_allclose(np.asarray(_apply(block, p, x)), y, atol=2e-4, rtol=2e-4)


def test_factorised_self_attention_block_attends_within_frames_then_across_time():
  b, t, s = 2, 4, 3  # b * t, b + t, b - t, ... all differ
  x = jax.random.normal(jax.random.PRNGKey(0), (b, t, s, D))
  block = _block("factorised_self_attention")
  p = _params(block, x)
  y = np.asarray(x, np.float64)
  spatial = _mha(_ln(y, p["norm_spatial"]).reshape(b * t, s, D), p["spatial_attention"])
  y = y + spatial.reshape(b, t, s, D)
  temporal_in = _ln(y, p["norm_temporal"]).transpose(0, 2, 1, 3).reshape(b * s, t, D)
  temporal = _mha(temporal_in, p["temporal_attention"])
  y = y + temporal.reshape(b, s, t, D).transpose(0, 2, 1, 3)
  y = y + _mlp(_ln(y, p["norm_mlp"]), p["mlp"])
  np.testing.assert_allclose(np.asarray(_apply(block, p, x)), y, atol=2e-4, rtol=2e-4)


def test_factorised_dot_product_block_wraps_the_split_head_attention():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 4, D))
  block = _block("factorised_dot_product")
  p = _params(block, x)
  y = np.asarray(x, np.float64)
  y = y + _mha(_ln(y, p["norm_attention"]), p["attention"],
               attention.FactorisedDotProductAttention)
  y = y + _mlp(_ln(y, p["norm_mlp"]), p["mlp"])
  np.testing.assert_allclose(np.asarray(_apply(block, p, x)), y, atol=2e-4, rtol=2e-4)


def test_unknown_block_type_and_remat_policy_fail_naming_the_valid_ones():
  x = jnp.ones((1, 2, D))
  with pytest.raises(ValueError, match="block_type must be one of"):
    _block("joint_ish").init(jax.random.PRNGKey(0), x)
  with pytest.raises(ValueError, match="remat_policy must be one of"):
    layers.Encoder(1, HEADS, MLP, remat_policy="some").init(jax.random.PRNGKey(0), x)


def test_encoder_stacks_blocks_then_a_final_norm_with_its_own_epsilon():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 5, D))
  for final_eps, expected_eps in ((None, EPS), (2.0, 2.0)):
    enc = layers.Encoder(2, HEADS, MLP, layer_norm_eps=EPS, final_norm_eps=final_eps)
    p = _params(enc, x)
    y = x
    for name in ("block_00", "block_01"):
      y = _apply(_block("joint"), p[name], y)
    ref = _ln(y, p["norm"], expected_eps)
    np.testing.assert_allclose(np.asarray(_apply(enc, p, x)), ref, atol=2e-4, rtol=2e-4)
  bare = layers.Encoder(1, HEADS, MLP, final_norm=False)
  assert "norm" not in _params(bare, x)


def test_remat_policies_leave_the_values_unchanged():
  x = jax.random.normal(jax.random.PRNGKey(0), (1, 3, D))
  enc = layers.Encoder(1, HEADS, MLP)
  p = _params(enc, x)
  plain = _apply(enc, p, x)
  for policy in ("full", "dots", "dots_no_batch"):
    remat = layers.Encoder(1, HEADS, MLP, remat_policy=policy)
    np.testing.assert_allclose(_apply(remat, p, x), plain, atol=1e-5)


def test_drop_path_keeps_or_drops_whole_examples_rescaled_and_only_in_training():
  x = jnp.ones((256, 3, 2))
  rng = {"dropout": jax.random.PRNGKey(3)}
  drop = layers.DropPath(0.25)
  np.testing.assert_array_equal(drop.apply({}, x, train=False), x)
  np.testing.assert_array_equal(layers.DropPath(0.0).apply({}, x, train=True, rngs=rng), x)
  out = np.asarray(drop.apply({}, x, train=True, rngs=rng))
  assert out.shape == x.shape
  # rate 0 draws nothing: no dropout rng needed
  np.testing.assert_array_equal(layers.DropPath(0.0).apply({}, x, train=True), x)
  per_example = out.reshape(256, -1)
  assert np.all((per_example == 0).all(1) | np.isclose(per_example, 1 / 0.75).all(1))
  kept = np.isclose(per_example[:, 0], 1 / 0.75).mean()
  assert 0.65 < kept < 0.85


def test_drop_path_rate_grows_linearly_from_zero_to_the_last_block():
  rates = []

  def record(next_fun, args, kwargs, context):
    if isinstance(context.module, layers.EncoderBlock) and context.method_name == "__call__":
      rates.append(context.module.drop_path_rate)
    return next_fun(*args, **kwargs)

  enc = layers.Encoder(3, HEADS, MLP, drop_path_rate=0.4)
  with nn.intercept_methods(record):
    jax.eval_shape(enc.init, jax.random.PRNGKey(0), jnp.ones((1, 2, D)))
  np.testing.assert_allclose(rates, [0.0, 0.2, 0.4])


def test_mlp_dropout_and_block_drop_path_act_only_in_training():
  x = jax.random.normal(jax.random.PRNGKey(0), (4, 3, D))
  rngs = {"dropout": jax.random.PRNGKey(5)}
  for kwargs in ({"dropout_rate": 0.5}, {"drop_path_rate": 0.5}):
    block = _block("joint", **kwargs)
    p = _params(block, x)
    plain = _apply(_block("joint"), p, x)
    np.testing.assert_allclose(_apply(block, p, x, rngs=rngs), plain, atol=1e-6)
    assert np.abs(np.asarray(_apply(block, p, x, train=True, rngs=rngs)) - plain).max() > 1e-3


def test_mlp_block_is_deterministic_by_default_and_drops_only_with_a_rate():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 3, D))
  mlp = layers.MlpBlock(MLP)
  p = _params(mlp, x)
  ref = _mlp(x, p)
  np.testing.assert_allclose(np.asarray(_apply(mlp, p, x)), ref, atol=1e-4, rtol=1e-4)
  rngs = {"dropout": jax.random.PRNGKey(1)}
  np.testing.assert_allclose(np.asarray(_apply(mlp, p, x, train=True, rngs=rngs)), ref,
                             atol=1e-4, rtol=1e-4)  # default rate 0
  dropping = layers.MlpBlock(MLP, dropout_rate=0.5)
  np.testing.assert_allclose(np.asarray(_apply(dropping, p, x, rngs=rngs)), ref,
                             atol=1e-4, rtol=1e-4)  # train defaults to False


def test_encoder_defaults_drop_nothing_in_training():
  # VideoMAE builds its encoders without the dropout arguments: the defaults are its rates.
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 3, D))
  enc = layers.Encoder(1, HEADS, MLP)
  p = _params(enc, x)
  np.testing.assert_allclose(_apply(enc, p, x, train=True,
                                    rngs={"dropout": jax.random.PRNGKey(1)}),
                             _apply(enc, p, x), atol=1e-6)
