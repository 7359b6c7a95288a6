"""Multi-head attention on `jax.nn.dot_product_attention`, with logical axes.

Three attention layouts share one module:
  * joint:      every token attends to every token of the sequence;
  * spatial / temporal grouping is done by the caller reshaping tokens, so
    `MultiHeadAttention` only ever sees `(B, L, D)`;
  * `FactorisedDotProductAttention` (ViViT Model 4) splits the heads: half attend
    within a frame, half attend across time at one spatial location.

The attention kernel is chosen by `implementation`: None lets JAX pick,
"xla" is the portable default, "cudnn" is the fused flash kernel on NVIDIA
GPUs (needs bfloat16/float16 compute), "chunked" computes the same softmax
attention one block of `QUERY_BLOCK` queries at a time (`lax.scan`), so the
`(heads, block, L)` logits stay in cache: on CPU about 2-3x faster than
"xla" for the 1568 tokens of a 16x224 clip (`scripts/benchmark_cpu_inference.py`).
"""

from typing import Any, Optional, Tuple

import flax.linen as nn
from flax.linen.dtypes import promote_dtype
import jax
import jax.numpy as jnp

from vivit_jax.models import token_merging
from vivit_jax.models.axes import EMBED, HEADS, KV

Dtype = Any

IMPLEMENTATIONS = (None, "xla", "cudnn", "chunked")
QUERY_BLOCK = 128


def dot_product_attention(query, key, value, implementation: Optional[str], bias=None):
  """Scaled dot-product attention.

  Args:
    query, key, value: `(B, L, heads, head_dim)`.
    implementation: None, "xla", "cudnn" or "chunked" (see module docstring).
    bias: None, or `(B, 1, 1, L)` added to the logits of each key (token
      merging's proportional attention, `token_merging.attention_bias`).

  Returns:
    `(B, L, heads, head_dim)`.
  """
  if implementation == "cudnn" and query.dtype not in (jnp.bfloat16, jnp.float16):
    raise ValueError(
        "attention_impl='cudnn' needs dtype bfloat16 or float16, got "
        f"{query.dtype}; set model.dtype='bfloat16' or attention_impl='xla'.")
  if implementation == "chunked":
    return chunked_dot_product_attention(query, key, value, bias=bias)
  if implementation not in IMPLEMENTATIONS:
    raise ValueError(f"attention_impl must be one of {IMPLEMENTATIONS}, got {implementation!r}")
  if implementation == "cudnn" and query.shape[1] % 2:
    return _attend_padded_to_even(query, key, value, implementation, bias)
  if bias is None:
    return jax.nn.dot_product_attention(query, key, value, implementation=implementation)
  if implementation == "cudnn":  # cuDNN takes the full (B, heads, L, L) bias
    b, length, heads, _ = query.shape
    bias = jnp.broadcast_to(bias, (b, heads, length, key.shape[1]))
  return jax.nn.dot_product_attention(query, key, value, bias, implementation=implementation)


def _attend_padded_to_even(query, key, value, implementation, bias=None):
  """Attention over an odd length L run at L + 1, the extra key masked out.

  jax's cuDNN path refuses to differentiate odd sequence lengths (a CLS token
  makes 1569 or 197 tokens), so the sequence gets one zero token that no
  query attends to (`key_value_seq_lengths`); its own output row is dropped.
  """
  length = query.shape[1]
  pad = lambda x: jnp.pad(x, ((0, 0), (0, 1), (0, 0), (0, 0)))
  lengths = jnp.full((query.shape[0],), length, jnp.int32)
  if bias is not None:  # (B, 1, 1, L) -> (B, heads, L + 1, L + 1)
    bias = jnp.pad(bias, ((0, 0), (0, 0), (0, 0), (0, 1)))
    bias = jnp.broadcast_to(bias, (query.shape[0], query.shape[2], length + 1, length + 1))
  out = jax.nn.dot_product_attention(pad(query), pad(key), pad(value), bias,
                                     query_seq_lengths=lengths,
                                     key_value_seq_lengths=lengths,
                                     implementation=implementation)
  return out[:, :length]


def chunked_dot_product_attention(query, key, value, block: Optional[int] = None, bias=None):
  """`softmax(q k^T / sqrt(head_dim) + bias) v` over blocks of `block` queries.

  Args:
    query, key, value: `(B, L, heads, head_dim)`; logits and softmax in float32.
    block: queries per step (None: the module's `QUERY_BLOCK`, read when
      tracing); L is padded to a multiple (padded rows dropped).
    bias: None or `(B, 1, 1, L)`, added to the logits of each key.

  Returns:
    `(B, L, heads, head_dim)` in the query's dtype.
  """
  b, length, heads, head_dim = query.shape
  block = min(block or QUERY_BLOCK, length)
  num_blocks = -(-length // block)
  q = (query * jnp.asarray(head_dim ** -0.5, query.dtype)).transpose(0, 2, 1, 3)
  q = jnp.pad(q, ((0, 0), (0, 0), (0, num_blocks * block - length), (0, 0)))
  q = q.reshape(b, heads, num_blocks, block, head_dim).transpose(2, 0, 1, 3, 4)
  k, v = key.transpose(0, 2, 1, 3), value.transpose(0, 2, 1, 3)  # (B, heads, L, hd)

  def attend(_, q_block):  # (B, heads, block, hd)
    logits = jnp.einsum("bnqh,bnkh->bnqk", q_block, k, preferred_element_type=jnp.float32)
    if bias is not None:
      logits = logits + jnp.asarray(bias, jnp.float32)
    weights = jnp.exp(logits - logits.max(axis=-1, keepdims=True))
    out = jnp.einsum("bnqk,bnkh->bnqh", weights.astype(v.dtype), v,
                     preferred_element_type=jnp.float32)
    return None, (out / weights.sum(axis=-1, keepdims=True)).astype(query.dtype)

  _, out = jax.lax.scan(attend, None, q)  # (blocks, B, heads, block, hd)
  out = out.transpose(1, 2, 0, 3, 4).reshape(b, heads, num_blocks * block, head_dim)
  return out[:, :, :length].transpose(0, 2, 1, 3)


class DenseND(nn.Module):
  """A dense layer from the last `num_in_axes` axes to `features`, full-rank kernel.

  Like `nn.DenseGeneral`, but the kernel parameter is created at its full
  rank `in_shape + features` (DenseGeneral initialises a flattened 2-D kernel
  and then fails to apply a 3-D logical-axis constraint to it, flax #3676).
  Parameters: `kernel` with logical axes `kernel_axes`, `bias` over `features`.
  """

  features: Tuple[int, ...]
  kernel_axes: Tuple[Optional[str], ...]
  num_in_axes: int = 1
  use_bias: bool = True
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    n_in, n_out = self.num_in_axes, len(self.features)
    init = nn.initializers.xavier_uniform(in_axis=tuple(range(n_in)),
                                          out_axis=tuple(range(n_in, n_in + n_out)))
    kernel = self.param("kernel", nn.with_logical_partitioning(init, self.kernel_axes),
                        tuple(x.shape[-n_in:]) + tuple(self.features), self.param_dtype)
    bias = None
    if self.use_bias:
      bias = self.param("bias", nn.with_logical_partitioning(nn.initializers.zeros,
                                                             self.kernel_axes[n_in:]),
                        tuple(self.features), self.param_dtype)
    x, kernel, bias = promote_dtype(x, kernel, bias, dtype=self.dtype)
    contract = (tuple(range(x.ndim - n_in, x.ndim)), tuple(range(n_in)))
    y = jax.lax.dot_general(x, kernel, (contract, ((), ())))
    return y if bias is None else y + bias


def qkv_projection(x, num_heads: int, qkv_bias: bool, dtype, param_dtype):
  """Projects `(..., D)` tokens to query, key, value `(..., heads, head_dim)`.

  Call from inside a compact module: the `query`, `key` and `value` layers
  become that module's children.
  """
  hidden = x.shape[-1]
  if hidden % num_heads:
    raise ValueError(f"hidden_size {hidden} is not divisible by num_heads {num_heads}")
  head_dim = hidden // num_heads
  return tuple(
      DenseND((num_heads, head_dim), (EMBED, HEADS, KV), 1, qkv_bias, dtype, param_dtype,
              name=name)(x) for name in ("query", "key", "value"))


def output_projection(x, dtype, param_dtype):
  """Merges `(..., heads, head_dim)` back to `(..., D)` (layer named `out`)."""
  hidden = x.shape[-2] * x.shape[-1]
  return DenseND((hidden,), (HEADS, KV, EMBED), 2, True, dtype, param_dtype, name="out")(x)


class MultiHeadAttention(nn.Module):
  """Self-attention over `(B, L, D)` tokens.

  `__call__(x, size=None)` returns `(B, L, D)`. With token sizes `size`
  `(B, L, 1)` (token merging) it adds `log(size)` to each key's logits and
  returns `(out, keys)`, `keys` `(B, L, head_dim)` the keys' mean over heads
  (the merging metric).
  """

  num_heads: int
  qkv_bias: bool = True
  attention_impl: Optional[str] = "xla"
  dropout_rate: float = 0.0
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, *, train: bool = False, size=None):
    q, k, v = qkv_projection(x, self.num_heads, self.qkv_bias, self.dtype, self.param_dtype)
    bias = None if size is None else token_merging.attention_bias(size, q.dtype)
    out = dot_product_attention(q, k, v, self.attention_impl, bias)
    out = output_projection(out, self.dtype, self.param_dtype)
    out = nn.Dropout(self.dropout_rate)(out, deterministic=not train)
    return out if size is None else (out, k.mean(axis=2))


class FactorisedDotProductAttention(nn.Module):
  """ViViT Model 4: half the heads attend spatially, half temporally.

  Input `(B, T, S, D)` with T time indices and S spatial tokens per time index.
  Heads `[0, H/2)` attend over the S tokens of their frame; heads `[H/2, H)`
  attend over the T tokens at their spatial location. The head outputs are
  concatenated and projected as in ordinary multi-head attention.
  """

  num_heads: int
  qkv_bias: bool = True
  attention_impl: Optional[str] = "xla"
  dropout_rate: float = 0.0
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    if self.num_heads % 2:
      raise ValueError(
          f"factorised_dot_product needs an even num_heads, got {self.num_heads}")
    b, t, s, d = x.shape
    q, k, v = qkv_projection(x.reshape(b, t * s, d), self.num_heads, self.qkv_bias,
                             self.dtype, self.param_dtype)
    half = self.num_heads // 2
    head_dim = q.shape[-1]

    def spatial(a):  # (B, T*S, H/2, hd) -> (B*T, S, H/2, hd)
      return a.reshape(b * t, s, half, head_dim)

    def temporal(a):  # (B, T*S, H/2, hd) -> (B*S, T, H/2, hd)
      return a.reshape(b, t, s, half, head_dim).transpose(0, 2, 1, 3, 4).reshape(
          b * s, t, half, head_dim)

    out_s = dot_product_attention(spatial(q[:, :, :half]), spatial(k[:, :, :half]),
                                  spatial(v[:, :, :half]), self.attention_impl)
    out_t = dot_product_attention(temporal(q[:, :, half:]), temporal(k[:, :, half:]),
                                  temporal(v[:, :, half:]), self.attention_impl)
    out_s = out_s.reshape(b, t, s, half, head_dim)
    out_t = out_t.reshape(b, s, t, half, head_dim).transpose(0, 2, 1, 3, 4)
    out = jnp.concatenate([out_s, out_t], axis=3)
    out = output_projection(out, self.dtype, self.param_dtype)
    return nn.Dropout(self.dropout_rate)(out, deterministic=not train)
