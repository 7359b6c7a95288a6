"""ViViT (Arnab et al., 2021): the four variants behind one `variant` field.

  spatio_temporal            Model 1: joint attention over all tubelet tokens.
  factorised_encoder         Model 2: a spatial encoder per time index, then a
                             temporal encoder over the per-frame summaries.
  factorised_self_attention  Model 3: every block attends spatially, then
                             temporally, then applies the MLP.
  factorised_dot_product     Model 4: half the heads attend spatially, half
                             temporally, inside one attention layer.

Input `(B, T, H, W, C)` channels-last video; output `(B, num_classes)` logits,
or `(B, D')` pooled features when `num_classes == 0`. With `class_splits`
(e.g. `(97, 300)`: Epic-Kitchens verbs and nouns) the one head's logits are
the heads' logits side by side, `num_classes == sum(class_splits)`;
`split_logits` cuts them apart. The encoder's output
tokens are sown as `intermediates/tokens` (`(B, L, D)` for Models 1 and 2,
`(B, nt*nh*nw, D)` for Models 3 and 4).

`token_merging` (ToMe, `token_merging.py`; off by default, for inference
on any checkpoint): `(r,)` merges r tokens in every block, a tuple of
`num_layers` values is a per-block schedule. It covers Model 1's joint
encoder (a VideoMAE classifier is Model 1) and Model 2's spatial encoder
(per frame; its temporal encoder is not merged). A class token, or the
first token with `classifier='first'`, is never merged; `classifier='gap'`
averages the tokens weighted by size, and the sown tokens are the merged
ones. Models 3 and 4 refuse it: their temporal attention needs the same S
spatial tokens in every frame, which per-frame merging breaks.
"""

from typing import Any, Optional, Tuple

import flax.linen as nn
import jax.numpy as jnp

from vivit_jax.models import embedding as emb
from vivit_jax.models import interface
from vivit_jax.models import layers
from vivit_jax.models import token_merging as tome
from vivit_jax.models.axes import CLASSES, EMBED, MLP

Dtype = Any

VARIANTS = ("spatio_temporal", "factorised_encoder", "factorised_self_attention",
            "factorised_dot_product")
# token: a prepended CLS token; gap: mean of all tokens; first: the first patch
# token, no CLS prepended (VideoMAE classifiers without mean pooling).
CLASSIFIERS = ("token", "gap", "first")
# Classifiers that read the first token: token merging never merges it.
FIRST_TOKEN_CLASSIFIERS = ("token", "first")
# Models 3 and 4: "separable" adds a spatial (nh*nw) and a temporal (nt) table;
# "joint" one table over all nt*nh*nw tokens (the paper's and scenic's choice).
FACTORISED_POSITIONS = ("separable", "joint")


def split_logits(logits, class_splits):
  """`(B, sum(class_splits))` -> one `(B, c)` array per head, in order."""
  bounds = [sum(class_splits[:i]) for i in range(1, len(class_splits))]
  return jnp.split(logits, bounds, axis=-1)


class ViViT(nn.Module):
  """Video Vision Transformer classifier; see the module docstring."""

  variant: str = "spatio_temporal"
  num_classes: int = 400
  hidden_size: int = 768
  num_layers: int = 12
  num_heads: int = 12
  mlp_dim: int = 3072
  temporal_layers: int = 4  # factorised_encoder: depth of the temporal encoder.
  patch_size: emb.IntOrPair = 16
  tubelet_size: int = 2
  frame_stride: int = 1
  classifier: str = "token"
  fc_norm: bool = False  # "gap" only: LayerNorm after pooling, none on the tokens.
  fc_norm_eps: Optional[float] = None  # None: layer_norm_eps
  representation_size: Optional[int] = None
  class_splits: Tuple[int, ...] = ()  # () = one head; else the heads' class counts.
  factorised_positions: str = "separable"  # Models 3 and 4; FACTORISED_POSITIONS.
  pos_embedding: str = "learned"
  dropout_rate: float = 0.0
  attention_dropout_rate: float = 0.0
  drop_path_rate: float = 0.0
  head_dropout_rate: float = 0.0
  qkv_bias: bool = True
  activation: str = "gelu"
  layer_norm_eps: float = 1e-6
  attention_impl: Optional[str] = "xla"
  remat_policy: str = "none"
  token_merging: Tuple[int, ...] = ()  # ToMe: () off; (r,) every block; or one r per block.
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  def _check(self):
    if self.variant not in VARIANTS:
      raise ValueError(f"model.variant must be one of {VARIANTS}, got {self.variant!r}")
    if self.classifier not in CLASSIFIERS:
      raise ValueError(f"model.classifier must be one of {CLASSIFIERS}, got {self.classifier!r}")
    if self.fc_norm and self.classifier != "gap":
      raise ValueError("model.fc_norm=True needs model.classifier='gap'")
    if self.class_splits and sum(self.class_splits) != self.num_classes:
      raise ValueError(f"model.class_splits={tuple(self.class_splits)} must sum to "
                       f"model.num_classes={self.num_classes}")
    if self.factorised_positions not in FACTORISED_POSITIONS:
      raise ValueError(f"model.factorised_positions must be one of {FACTORISED_POSITIONS}, "
                       f"got {self.factorised_positions!r}")
    if self._merging() and self.variant not in ("spatio_temporal", "factorised_encoder"):
      raise ValueError(f"model.token_merging={tuple(self.token_merging)} covers the "
                       "spatio_temporal and factorised_encoder variants, not "
                       f"{self.variant!r}; set model.token_merging=()")

  def _merging(self):
    """Per-block r of the merged (joint or spatial) encoder; () when off."""
    return tome.schedule(self.token_merging, self.num_layers)

  def _encoder(self, name, num_layers, block_type="joint", final_norm=True, merging=()):
    return layers.Encoder(
        num_layers=num_layers, num_heads=self.num_heads, mlp_dim=self.mlp_dim,
        block_type=block_type, dropout_rate=self.dropout_rate,
        attention_dropout_rate=self.attention_dropout_rate,
        drop_path_rate=self.drop_path_rate, qkv_bias=self.qkv_bias,
        activation=self.activation, layer_norm_eps=self.layer_norm_eps,
        final_norm=final_norm, attention_impl=self.attention_impl,
        remat_policy=self.remat_policy, token_merging=merging,
        merge_protect_first=self.classifier in FIRST_TOKEN_CLASSIFIERS,
        dtype=self.dtype, param_dtype=self.param_dtype, name=name)

  def _cls_token(self, name, x):
    """Prepends a learned token to `(N, L, D)`."""
    cls = self.param(name, nn.with_logical_partitioning(nn.initializers.zeros,
                                                        (None, None, EMBED)),
                     (1, 1, x.shape[-1]), self.param_dtype)
    cls = jnp.broadcast_to(jnp.asarray(cls, x.dtype), (x.shape[0], 1, x.shape[-1]))
    return jnp.concatenate([cls, x], axis=1)

  def _pos(self, name, num_positions, broadcast_shape=()):
    return emb.PositionEmbedding(num_positions, self.pos_embedding, broadcast_shape,
                                 self.dtype, self.param_dtype, name=name)

  def _pool(self, x, has_cls, size=None):
    """`(N, L, D)` -> `(N, D)` by the CLS token or by the mean of all tokens
    (weighted by the merged tokens' sizes `(N, L, 1)` when given)."""
    if self.classifier in FIRST_TOKEN_CLASSIFIERS:
      return x[:, 0]
    if size is not None:
      return tome.weighted_mean(x[:, 1:], size[:, 1:]) if has_cls else tome.weighted_mean(x, size)
    return jnp.mean(x[:, 1:] if has_cls else x, axis=1)

  def _merged_encoder(self, x, train, final_norm=True):
    """The (spatial) encoder over `(N, L, D)`: `(tokens, sizes or None)`."""
    merging = self._merging()
    out = self._encoder("encoder", self.num_layers, final_norm=final_norm,
                        merging=merging)(x, train=train)
    return out if merging else (out, None)

  @nn.compact
  def __call__(self, video, *, train: bool = False):
    self._check()
    tokens = emb.TubeletEmbedding(self.hidden_size, self.patch_size, self.tubelet_size,
                                  self.frame_stride, self.dtype, self.param_dtype,
                                  name="embedding")(jnp.asarray(video, self.dtype))
    b, nt, nh, nw, d = tokens.shape
    use_cls = self.classifier == "token"
    final_norm = not self.fc_norm

    if self.variant == "spatio_temporal":
      x = tokens.reshape(b, nt * nh * nw, d)
      if use_cls:
        x = self._cls_token("cls_token", x)
      x = self._pos("pos_embedding", x.shape[1])(x)
      x = nn.Dropout(self.dropout_rate)(x, deterministic=not train)
      x, size = self._merged_encoder(x, train, final_norm)
      self.sow("intermediates", "tokens", x)
      pooled = self._pool(x, use_cls, size)

    elif self.variant == "factorised_encoder":
      x = tokens.reshape(b * nt, nh * nw, d)
      if use_cls:
        x = self._cls_token("cls_token", x)
      x = self._pos("pos_embedding", x.shape[1])(x)
      x = nn.Dropout(self.dropout_rate)(x, deterministic=not train)
      x, size = self._merged_encoder(x, train)
      x = self._pool(x, use_cls, size).reshape(b, nt, d)
      if use_cls:
        x = self._cls_token("temporal_cls_token", x)
      x = self._pos("temporal_pos_embedding", x.shape[1])(x)
      x = self._encoder("temporal_encoder", self.temporal_layers,
                        final_norm=final_norm)(x, train=train)
      self.sow("intermediates", "tokens", x)
      pooled = self._pool(x, use_cls)

    else:  # Models 3 and 4: separable embeddings, blocks over (B, T, S, D).
      if self.classifier != "gap":
        raise ValueError(f"variant {self.variant!r} pools by average: set "
                         "model.classifier='gap'")
      x = tokens.reshape(b, nt, nh * nw, d)
      if self.factorised_positions == "joint":
        x = self._pos("pos_embedding", nt * nh * nw, (1, nt, nh * nw, d))(x)
      else:
        x = self._pos("pos_embedding", nh * nw, (1, 1, nh * nw, d))(x)
        x = self._pos("temporal_pos_embedding", nt, (1, nt, 1, d))(x)
      x = nn.Dropout(self.dropout_rate)(x, deterministic=not train)
      x = self._encoder("encoder", self.num_layers, block_type=self.variant,
                        final_norm=final_norm)(x, train=train)
      x = x.reshape(b, nt * nh * nw, d)
      self.sow("intermediates", "tokens", x)
      pooled = self._pool(x, False)

    if self.fc_norm:
      eps = self.layer_norm_eps if self.fc_norm_eps is None else self.fc_norm_eps
      pooled = layers.layer_norm(eps, self.dtype, self.param_dtype, "fc_norm")(pooled)
    if self.representation_size:
      pooled = layers.dense(self.representation_size, (EMBED, MLP), self.dtype,
                            self.param_dtype, "pre_logits")(pooled)
      pooled = jnp.tanh(pooled)
    if not self.num_classes:
      return pooled
    pooled = nn.Dropout(self.head_dropout_rate)(pooled, deterministic=not train)
    logits = layers.dense(self.num_classes, (MLP if self.representation_size else EMBED,
                                             CLASSES),
                          self.dtype, self.param_dtype, "head",
                          kernel_init=nn.initializers.zeros)(pooled)
    return jnp.asarray(logits, jnp.float32)


def merged_sequence(m: ViViT, video_shape) -> Tuple[int, bool]:
  """`(tokens, protect_first)` of one sequence token merging sees in a clip
  `(T, H, W, C)`: its length entering the first merged block (every tubelet
  token for Model 1, one frame's tokens for Model 2's spatial encoder; a
  class token counted) and whether its first token is never merged. What
  `token_merging.resolve` needs to turn `P%` into a schedule."""
  nt, nh, nw = emb.token_grid(video_shape, m.patch_size, m.tubelet_size, m.frame_stride)
  patches = nh * nw if m.variant == "factorised_encoder" else nt * nh * nw
  return patches + int(m.classifier == "token"), m.classifier in FIRST_TOKEN_CLASSIFIERS


def _encoder_macs(m: ViViT, tokens: int, groups: int) -> int:
  """MACs of the (spatial) encoder over `groups` sequences of `tokens` tokens,
  with token merging's shorter sequences and its matching products."""
  d, protect = m.hidden_size, m.classifier in FIRST_TOKEN_CLASSIFIERS
  macs = 0
  for r in tome.schedule(m.token_merging, m.num_layers) or (0,) * m.num_layers:
    out = tome.merged_length(tokens, r, protect)
    macs += interface.joint_block_macs(tokens, groups, d, m.mlp_dim)
    macs -= 2 * groups * (tokens - out) * d * m.mlp_dim  # the MLP sees the merged tokens
    if out < tokens:  # the A x B key similarities
      macs += groups * ((tokens + 1) // 2) * (tokens // 2) * (d // m.num_heads)
    tokens = out
  return macs


def forward_macs(m: ViViT, video_shape) -> int:
  """Multiply-adds of one forward pass on one clip `(T, H, W, C)` (`flops.py` convention)."""
  nt, nh, nw = emb.token_grid(video_shape, m.patch_size, m.tubelet_size, m.frame_stride)
  channels = video_shape[3] if len(video_shape) > 3 else 3
  ph, pw = emb.as_pair(m.patch_size)
  d, s = m.hidden_size, nh * nw
  cls = 1 if m.classifier == "token" else 0
  block = interface.joint_block_macs
  macs = nt * s * m.tubelet_size * ph * pw * channels * d
  if m.variant == "spatio_temporal":
    macs += _encoder_macs(m, nt * s + cls, 1)
  elif m.variant == "factorised_encoder":
    macs += _encoder_macs(m, s + cls, nt)
    macs += m.temporal_layers * block(nt + cls, 1, d, m.mlp_dim)
  elif m.variant == "factorised_self_attention":
    length = nt * s
    macs += m.num_layers * (8 * length * d * d + 2 * nt * s * s * d + 2 * s * nt * nt * d
                            + 2 * length * d * m.mlp_dim)
  else:  # factorised_dot_product: half the heads each way.
    length = nt * s
    macs += m.num_layers * (4 * length * d * d + nt * s * s * d + s * nt * nt * d
                            + 2 * length * d * m.mlp_dim)
  features = d
  if m.representation_size:
    macs += d * m.representation_size
    features = m.representation_size
  return macs + features * (m.num_classes or 0)


INTERFACE = interface.ModelInterface(module=ViViT, objective="classification",
                                     dummy_inputs=interface.video_only,
                                     forward_macs=forward_macs)
