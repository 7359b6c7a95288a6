"""Attention (models/attention.py) against a float64 NumPy reference built from
the layers' own parameters: projections, head split, softmax scaling, the
factorised Model 4 head halves, kernels and their dispatch."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from support import random_params
from vivit_jax.models import attention


def _softmax_attend(q, k, v):
  """`(B, L, heads, hd)` float64 softmax attention."""
  logits = np.einsum("bqnh,bknh->bnqk", q, k) / np.sqrt(q.shape[-1])
  w = np.exp(logits - logits.max(-1, keepdims=True))
  return np.einsum("bnqk,bknh->bqnh", w / w.sum(-1, keepdims=True), v)


def _qkv(length, heads=2, head_dim=4, batch=2, seed=0):
  keys = jax.random.split(jax.random.PRNGKey(seed), 3)
  return tuple(2 * jax.random.normal(k, (batch, length, heads, head_dim)) for k in keys)


def _project(x, p):
  return np.einsum("...d,dnh->...nh", x, np.asarray(p["kernel"], np.float64)) + np.asarray(
      p["bias"], np.float64)


def _out(o, p):
  return np.einsum("...nh,nhd->...d", o, np.asarray(p["kernel"], np.float64)) + np.asarray(
      p["bias"], np.float64)


_params = random_params.random_params
_apply = random_params.jit_apply


@pytest.mark.parametrize("length,block", [(5, 2), (4, 4), (3, 128)])
def test_chunked_attention_equals_the_softmax_formula_for_any_block(length, block):
  q, k, v = _qkv(length)
  got = attention.chunked_dot_product_attention(q, k, v, block=block)
  assert got.shape == q.shape and got.dtype == q.dtype
  exact = _softmax_attend(*(np.asarray(a, np.float64) for a in (q, k, v)))
  np.testing.assert_allclose(np.asarray(got), exact, atol=1e-5, rtol=1e-5)


def test_every_implementation_name_computes_the_same_attention_on_cpu():
  q, k, v = _qkv(5)
  exact = _softmax_attend(*(np.asarray(a, np.float64) for a in (q, k, v)))
  for impl in (None, "xla", "chunked"):
    np.testing.assert_allclose(np.asarray(attention.dot_product_attention(q, k, v, impl)),
                               exact, atol=1e-5, rtol=1e-5)
  half = attention.chunked_dot_product_attention(*(a.astype(jnp.bfloat16) for a in (q, k, v)))
  assert half.dtype == jnp.bfloat16


def test_odd_length_padding_masks_the_extra_key_and_drops_its_row():
  q, k, v = _qkv(5)
  got = attention._attend_padded_to_even(q, k, v, "xla")  # pylint: disable=protected-access
  assert got.shape == q.shape
  exact = _softmax_attend(*(np.asarray(a, np.float64) for a in (q, k, v)))
  np.testing.assert_allclose(np.asarray(got), exact, atol=1e-5, rtol=1e-5)


def test_unknown_and_cudnn_float32_implementations_fail_naming_the_fix():
  q, k, v = _qkv(4)
  with pytest.raises(ValueError, match="attention_impl must be one of"):
    attention.dot_product_attention(q, k, v, "flash")
  with pytest.raises(ValueError, match="needs dtype bfloat16 or float16.*float32"):
    attention.dot_product_attention(q, k, v, "cudnn")


def test_dense_nd_contracts_the_last_axes_with_a_full_rank_kernel():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 4, 5))
  layer = attention.DenseND((6,), (None, None, None), num_in_axes=2)
  params = _params(layer, x)
  assert params["kernel"].shape == (4, 5, 6) and params["bias"].shape == (6,)
  y = _apply(layer, params, x)
  ref = np.einsum("abij,ijk->abk", np.asarray(x, np.float64),
                  np.asarray(params["kernel"], np.float64)) + np.asarray(params["bias"])
  np.testing.assert_allclose(np.asarray(y), ref, atol=1e-5, rtol=1e-5)
  no_bias = attention.DenseND((2, 3), (None, None, None), use_bias=False)
  p = _params(no_bias, x)
  assert set(p) == {"kernel"} and p["kernel"].shape == (5, 2, 3)
  half = attention.DenseND((6,), (None, None, None), 2, dtype=jnp.bfloat16)
  assert _apply(half, params, x).dtype == jnp.bfloat16


def test_dense_nd_kernel_is_xavier_uniform_over_the_full_fan_in_and_out():
  x = jnp.ones((1, 16, 4))
  layer = attention.DenseND((4, 8), (None, None, None, None), 2)
  kernel = np.asarray(nn.unbox(jax.jit(layer.init)(jax.random.PRNGKey(0), x)["params"])["kernel"])
  limit = np.sqrt(6.0 / (16 * 4 + 4 * 8))  # fan_in 64, fan_out 32
  assert np.abs(kernel).max() <= limit
  assert np.abs(kernel).max() > 0.95 * limit


def test_multi_head_attention_is_project_attend_merge():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 5, 8))
  mha = attention.MultiHeadAttention(num_heads=2)
  params = _params(mha, x)
  assert params["query"]["kernel"].shape == (8, 2, 4)
  assert params["out"]["kernel"].shape == (2, 4, 8)
  x64 = np.asarray(x, np.float64)
  q, k, v = (_project(x64, params[n]) for n in ("query", "key", "value"))
  ref = _out(_softmax_attend(q, k, v), params["out"])
  np.testing.assert_allclose(np.asarray(_apply(mha, params, x)), ref,
                             atol=1e-4, rtol=1e-4)
  plain = attention.MultiHeadAttention(num_heads=2, qkv_bias=False)
  assert "bias" not in _params(plain, x)["query"]


def test_heads_must_divide_the_hidden_size():
  with pytest.raises(ValueError, match="hidden_size 8 is not divisible by num_heads 3"):
    attention.MultiHeadAttention(num_heads=3).init(jax.random.PRNGKey(0), jnp.ones((1, 2, 8)))


def test_attention_dropout_acts_only_in_training():
  x = jax.random.normal(jax.random.PRNGKey(0), (1, 4, 8))
  mha = attention.MultiHeadAttention(num_heads=2, dropout_rate=0.5)
  params = _params(mha, x)
  rngs = {"dropout": jax.random.PRNGKey(2)}
  evals = _apply(mha, params, x, rngs=rngs)
  np.testing.assert_array_equal(evals, _apply(mha, params, x))
  trained = np.asarray(_apply(mha, params, x, train=True, rngs=rngs))
  assert np.mean(trained == 0) > 0.2
  kept = trained != 0
  np.testing.assert_allclose(trained[kept], 2 * np.asarray(evals)[kept], rtol=1e-5)


def test_factorised_heads_first_half_within_a_frame_second_half_across_time():
  b, t, s, d, heads = 2, 3, 4, 8, 4
  x = jax.random.normal(jax.random.PRNGKey(0), (b, t, s, d))
  layer = attention.FactorisedDotProductAttention(num_heads=heads)
  params = _params(layer, x)
  x64 = np.asarray(x, np.float64)
  q, k, v = (_project(x64, params[n]) for n in ("query", "key", "value"))  # (b, t, s, H, hd)
  half = heads // 2
  spatial = _softmax_attend(*(a[:, :, :, :half].reshape(b * t, s, half, -1) for a in (q, k, v)))
  spatial = spatial.reshape(b, t, s, half, -1)
  temporal = _softmax_attend(*(a[:, :, :, half:].transpose(0, 2, 1, 3, 4).reshape(
      b * s, t, half, -1) for a in (q, k, v)))
  temporal = temporal.reshape(b, s, t, half, -1).transpose(0, 2, 1, 3, 4)
  ref = _out(np.concatenate([spatial, temporal], axis=3), params["out"])
  got = _apply(layer, params, x)
  assert got.shape == (b, t, s, d)
  np.testing.assert_allclose(np.asarray(got), ref, atol=1e-4, rtol=1e-4)


def test_factorised_attention_refuses_an_odd_head_count():
  with pytest.raises(ValueError, match="even num_heads, got 3"):
    attention.FactorisedDotProductAttention(num_heads=3).init(
        jax.random.PRNGKey(0), jnp.ones((1, 2, 2, 6)))
