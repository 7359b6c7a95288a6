"""The CPU-friendly "chunked" attention computes what jax.nn.dot_product_attention does."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vivit_jax.models import attention, build_model


def _qkv(length, heads=3, head_dim=16, batch=2, dtype=jnp.float32, seed=0):
  keys = jax.random.split(jax.random.PRNGKey(seed), 3)
  return tuple(3 * jax.random.normal(k, (batch, length, heads, head_dim)).astype(dtype)
               for k in keys)


@pytest.mark.parametrize("length,block", [(5, 128), (128, 32), (300, 128), (301, 64)])
def test_chunked_attention_equals_xla_attention(length, block):
  q, k, v = _qkv(length)
  xla = jax.nn.dot_product_attention(q, k, v, implementation="xla")
  got = attention.chunked_dot_product_attention(q, k, v, block=block)
  assert got.shape == xla.shape and got.dtype == xla.dtype
  # Both against float64 numpy: the chunked error is no larger than XLA's own.
  q64, k64, v64 = (np.asarray(a, np.float64) for a in (q, k, v))
  logits = np.einsum("bqnh,bknh->bnqk", q64, k64) / np.sqrt(q.shape[-1])
  weights = np.exp(logits - logits.max(-1, keepdims=True))
  exact = np.einsum("bnqk,bknh->bqnh", weights / weights.sum(-1, keepdims=True), v64)
  xla_error = np.abs(np.asarray(xla) - exact).max()
  assert np.abs(np.asarray(got) - exact).max() <= 2 * xla_error + 1e-6
  np.testing.assert_allclose(got, xla, atol=5e-5, rtol=1e-4)


def test_chunked_attention_in_bfloat16_matches_within_bfloat16_precision():
  q, k, v = _qkv(200, dtype=jnp.bfloat16)
  want = jax.nn.dot_product_attention(q, k, v, implementation="xla").astype(jnp.float32)
  got = attention.dot_product_attention(q, k, v, "chunked")
  assert got.dtype == jnp.bfloat16
  np.testing.assert_allclose(got.astype(jnp.float32), want, atol=3e-2, rtol=3e-2)


def test_chunked_attention_gradients_equal_xla_gradients():
  q, k, v = _qkv(70)
  loss = lambda impl: lambda *a: jnp.sum(jnp.sin(attention.dot_product_attention(*a, impl)))
  want = jax.grad(loss("xla"), argnums=(0, 1, 2))(q, k, v)
  got = jax.grad(loss("chunked"), argnums=(0, 1, 2))(q, k, v)
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("variant", ["spatio_temporal", "factorised_self_attention",
                                     "factorised_dot_product"])
def test_models_with_chunked_attention_give_the_same_logits(variant):
  config = dict(name="vivit", variant=variant, hidden_size=32, num_layers=2, num_heads=4,
                mlp_dim=64, patch_size=8, tubelet_size=2, num_classes=5,
                classifier="token" if variant == "spatio_temporal" else "gap")
  video = jax.random.normal(jax.random.PRNGKey(1), (2, 4, 32, 32, 3))
  model = build_model(config)
  params = model.init(jax.random.PRNGKey(0), video)["params"]
  params = jax.tree_util.tree_map(lambda x: x + 0.1, params)  # a non-zero head
  want = model.apply({"params": params}, video)
  got = build_model(dict(config, attention_impl="chunked")).apply({"params": params}, video)
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)
  assert float(jnp.abs(want).max()) > 0


def test_unknown_attention_impl_names_the_valid_ones():
  q, k, v = _qkv(4)
  with pytest.raises(ValueError, match="chunked"):
    attention.dot_product_attention(q, k, v, "flash")
