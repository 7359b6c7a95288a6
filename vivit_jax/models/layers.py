"""Transformer blocks: joint, factorised self-attention (Model 3), factorised
dot-product attention (Model 4), and the encoder stack that holds them."""

from typing import Any, Optional, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vivit_jax.models import attention as attn_lib
from vivit_jax.models import token_merging as tome
from vivit_jax.models.axes import ACTIVATION, EMBED, MLP

Dtype = Any

# `jax.nn.*` looked up at each call, not bound here, so that an exporter
# patching them while it traces (jax2onnx: one ONNX `Gelu` node) sees ours.
ACTIVATIONS = {
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    # HF's "gelu_new" / "gelu_fast" / "gelu_pytorch_tanh" are all this one.
    "gelu_tanh": lambda x: jax.nn.gelu(x, approximate=True),
    "relu": lambda x: jax.nn.relu(x),  # pylint: disable=unnecessary-lambda
    "silu": lambda x: jax.nn.silu(x),  # pylint: disable=unnecessary-lambda
}

BLOCK_TYPES = ("joint", "factorised_self_attention", "factorised_dot_product")

# Rematerialisation policies, by config name. "none" keeps every activation.
REMAT_POLICIES = {
    "none": None,
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.checkpoint_dots,
    "dots_no_batch": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


def layer_norm(eps: float, dtype, param_dtype, name: str) -> nn.LayerNorm:
  return nn.LayerNorm(
      epsilon=eps, dtype=dtype, param_dtype=param_dtype, name=name,
      scale_init=nn.with_logical_partitioning(nn.initializers.ones, (EMBED,)),
      bias_init=nn.with_logical_partitioning(nn.initializers.zeros, (EMBED,)))


def dense(features: int, axes, dtype, param_dtype, name: str, kernel_init=None) -> nn.Dense:
  kernel_init = kernel_init or nn.initializers.xavier_uniform()
  return nn.Dense(
      features, dtype=dtype, param_dtype=param_dtype, name=name,
      kernel_init=nn.with_logical_partitioning(kernel_init, axes),
      bias_init=nn.with_logical_partitioning(nn.initializers.zeros, (axes[-1],)))


class DropPath(nn.Module):
  """Stochastic depth: drops the whole residual branch per example."""

  rate: float

  @nn.compact
  def __call__(self, x, *, train: bool):
    if not train or self.rate == 0.0:
      return x
    keep = 1.0 - self.rate
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    mask = jax.random.bernoulli(self.make_rng("dropout"), keep, shape)
    return jnp.where(mask, x / keep, jnp.zeros_like(x))


class MlpBlock(nn.Module):
  """Dense -> activation -> dropout -> Dense -> dropout, over the last axis."""

  mlp_dim: int
  activation: str = "gelu"
  dropout_rate: float = 0.0
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    hidden = x.shape[-1]
    y = dense(self.mlp_dim, (EMBED, MLP), self.dtype, self.param_dtype,
              "fc1")(x)
    y = ACTIVATIONS[self.activation](y)
    y = nn.Dropout(self.dropout_rate)(y, deterministic=not train)
    y = dense(hidden, (MLP, EMBED), self.dtype, self.param_dtype, "fc2")(y)
    return nn.Dropout(self.dropout_rate)(y, deterministic=not train)


class EncoderBlock(nn.Module):
  """One pre-norm transformer block.

  `block_type`:
    joint: `(B, L, D)`; attention over all L tokens.
    factorised_self_attention: `(B, T, S, D)`; attention within each frame,
      then attention across time at each spatial location, then the MLP.
    factorised_dot_product: `(B, T, S, D)`; half the heads spatial, half
      temporal inside one attention layer.

  Token merging (joint blocks only): called with token sizes `size`
  `(B, L, 1)` the attention is proportional (`log(size)` on the logits),
  `merge_r` tokens are merged between the attention and the MLP
  (`token_merging`; position 0 never with `merge_protect_first`) and the
  block returns `(x, size)`, `(B, L', D)` and `(B, L', 1)`.
  """

  block_type: str
  num_heads: int
  mlp_dim: int
  dropout_rate: float = 0.0
  attention_dropout_rate: float = 0.0
  drop_path_rate: float = 0.0
  qkv_bias: bool = True
  activation: str = "gelu"
  layer_norm_eps: float = 1e-6
  attention_impl: Optional[str] = "xla"
  merge_r: int = 0
  merge_protect_first: bool = False
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  def _norm(self, name):
    return layer_norm(self.layer_norm_eps, self.dtype, self.param_dtype, name)

  def _attention(self, name, cls=attn_lib.MultiHeadAttention):
    return cls(num_heads=self.num_heads, qkv_bias=self.qkv_bias,
               attention_impl=self.attention_impl, dropout_rate=self.attention_dropout_rate,
               dtype=self.dtype, param_dtype=self.param_dtype, name=name)

  @nn.compact
  def __call__(self, x, train: bool = False, size=None):
    drop_path = DropPath(self.drop_path_rate)
    if size is not None and self.block_type != "joint":
      raise ValueError(f"token merging needs joint blocks, not {self.block_type!r}")
    if self.block_type == "joint" and size is not None:
      y, keys = self._attention("attention")(self._norm("norm_attention")(x), train=train,
                                             size=size)
      x = x + drop_path(y, train=train)
      r = tome.merged_r(x.shape[1], self.merge_r, self.merge_protect_first)
      if r:
        plan = tome.bipartite_soft_matching(keys, r, self.merge_protect_first)
        x, size = tome.merge_wavg(plan, x, size)
    elif self.block_type == "joint":
      y = self._attention("attention")(self._norm("norm_attention")(x), train=train)
      x = x + drop_path(y, train=train)
    elif self.block_type == "factorised_self_attention":
      b, t, s, d = x.shape
      y = self._norm("norm_spatial")(x).reshape(b * t, s, d)
      y = self._attention("spatial_attention")(y, train=train).reshape(b, t, s, d)
      x = x + drop_path(y, train=train)
      y = self._norm("norm_temporal")(x).transpose(0, 2, 1, 3).reshape(b * s, t, d)
      y = self._attention("temporal_attention")(y, train=train)
      y = y.reshape(b, s, t, d).transpose(0, 2, 1, 3)
      x = x + drop_path(y, train=train)
    elif self.block_type == "factorised_dot_product":
      y = self._attention("attention", attn_lib.FactorisedDotProductAttention)(
          self._norm("norm_attention")(x), train=train)
      x = x + drop_path(y, train=train)
    else:
      raise ValueError(f"block_type must be one of {BLOCK_TYPES}, got {self.block_type!r}")
    y = MlpBlock(self.mlp_dim, self.activation, self.dropout_rate, self.dtype,
                 self.param_dtype, name="mlp")(self._norm("norm_mlp")(x), train=train)
    x = x + drop_path(y, train=train)
    return x if size is None else (x, size)


class Encoder(nn.Module):
  """A stack of `num_layers` blocks and an optional final LayerNorm.

  Input and output: `(B, L, D)` for joint blocks, `(B, T, S, D)` for the
  factorised ones. Stochastic depth grows linearly from 0 at the first block
  to `drop_path_rate` at the last. `remat_policy` names an entry of
  `REMAT_POLICIES` and is applied per block.

  `token_merging`: `()` (off) or one r per block (`token_merging.schedule`),
  joint blocks only; then `__call__` returns `(x, size)`, the `(B, L', D)`
  merged tokens and their sizes `(B, L', 1)` (input tokens each stands for;
  `L'` from `token_merging.token_counts`). `merge_protect_first` keeps the
  token at position 0 (a class token) unmerged.
  """

  num_layers: int
  num_heads: int
  mlp_dim: int
  block_type: str = "joint"
  dropout_rate: float = 0.0
  attention_dropout_rate: float = 0.0
  drop_path_rate: float = 0.0
  qkv_bias: bool = True
  activation: str = "gelu"
  layer_norm_eps: float = 1e-6
  final_norm: bool = True
  final_norm_eps: Optional[float] = None  # None: layer_norm_eps
  attention_impl: Optional[str] = "xla"
  remat_policy: str = "none"
  token_merging: Tuple[int, ...] = ()
  merge_protect_first: bool = False
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    if self.remat_policy not in REMAT_POLICIES:
      raise ValueError(
          f"remat_policy must be one of {sorted(REMAT_POLICIES)}, got {self.remat_policy!r}")
    block_cls = EncoderBlock
    if self.remat_policy != "none":
      block_cls = nn.remat(EncoderBlock, policy=REMAT_POLICIES[self.remat_policy],
                           static_argnums=(2,))
    rates = np.linspace(0.0, self.drop_path_rate, max(self.num_layers, 1))
    merging = tome.schedule(self.token_merging, self.num_layers)
    size = jnp.ones(x.shape[:2] + (1,), jnp.float32) if merging else None
    for i in range(self.num_layers):
      block = block_cls(
          block_type=self.block_type, num_heads=self.num_heads, mlp_dim=self.mlp_dim,
          dropout_rate=self.dropout_rate, attention_dropout_rate=self.attention_dropout_rate,
          drop_path_rate=float(rates[i]), qkv_bias=self.qkv_bias, activation=self.activation,
          layer_norm_eps=self.layer_norm_eps, attention_impl=self.attention_impl,
          merge_r=merging[i] if merging else 0, merge_protect_first=self.merge_protect_first,
          dtype=self.dtype, param_dtype=self.param_dtype, name=f"block_{i:02d}")
      if merging:
        x, size = block(x, train, size)
      else:
        x = block(x, train)
      if x.ndim == 3:
        x = nn.with_logical_constraint(x, ACTIVATION)
    if self.final_norm:
      eps = self.layer_norm_eps if self.final_norm_eps is None else self.final_norm_eps
      x = layer_norm(eps, self.dtype, self.param_dtype, "norm")(x)
    return (x, size) if merging else x
