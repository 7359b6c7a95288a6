"""Analytic parameter and FLOP counts for any model config.

FLOPs are counted as multiply-adds of the matrix multiplications (a
`(m, k) @ (k, n)` product is `m*k*n` MACs), the convention of the ViViT and
VideoMAE papers' GFLOPs columns; `flops = 2 * macs` is the hardware count
used for MFU. Normalisation, softmax, activations and additions are left
out (they are < 1% for ViT-B). A training step is 3x the forward pass.
"""

from typing import Any, Dict, Mapping, Sequence, Union

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vivit_jax.models import embedding as emb
from vivit_jax.models import masking
from vivit_jax.models.registry import build_model
from vivit_jax.models.videomae import MaskedVideoAutoencoder
from vivit_jax.models.vivit import ViViT

ModelOrConfig = Union[nn.Module, Mapping[str, Any]]


def _as_model(model: ModelOrConfig) -> nn.Module:
  return model if isinstance(model, nn.Module) else build_model(model)


def joint_block_macs(tokens: int, groups: int, hidden: int, mlp_dim: int) -> int:
  """One pre-norm block over `groups` independent sequences of `tokens` tokens."""
  length = tokens * groups
  projections = 4 * length * hidden * hidden
  attention = 2 * groups * tokens * tokens * hidden
  mlp = 2 * length * hidden * mlp_dim
  return projections + attention + mlp


def _vivit_macs(m: ViViT, grid: Sequence[int], channels: int) -> int:
  nt, nh, nw = grid
  ph, pw = emb.as_pair(m.patch_size)
  d, s = m.hidden_size, nh * nw
  cls = 1 if m.classifier == "token" else 0
  macs = nt * s * m.tubelet_size * ph * pw * channels * d
  if m.variant == "spatio_temporal":
    macs += m.num_layers * joint_block_macs(nt * s + cls, 1, d, m.mlp_dim)
  elif m.variant == "factorised_encoder":
    macs += m.num_layers * joint_block_macs(s + cls, nt, d, m.mlp_dim)
    macs += m.temporal_layers * joint_block_macs(nt + cls, 1, d, m.mlp_dim)
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


def _mae_macs(m: MaskedVideoAutoencoder, grid: Sequence[int], channels: int) -> int:
  nt, nh, nw = grid
  ph, pw = emb.as_pair(m.patch_size)
  n = nt * nh * nw
  masked = masking.num_masked_tokens(grid, m.mask_type, m.mask_ratio, m.future_frames)
  visible = n - masked
  pixels = m.tubelet_size * ph * pw * channels
  macs = n * pixels * m.hidden_size
  macs += m.num_layers * joint_block_macs(visible, 1, m.hidden_size, m.mlp_dim)
  macs += visible * m.hidden_size * m.decoder_hidden_size
  macs += m.decoder_layers * joint_block_macs(n, 1, m.decoder_hidden_size, m.decoder_mlp_dim)
  return macs + masked * m.decoder_hidden_size * pixels


def forward_macs(model: ModelOrConfig, video_shape: Sequence[int]) -> int:
  """Multiply-adds of one forward pass on one clip `(T, H, W, C)`."""
  m = _as_model(model)
  frame_stride = getattr(m, "frame_stride", 1)
  grid = emb.token_grid(video_shape, m.patch_size, m.tubelet_size, frame_stride)
  channels = video_shape[3] if len(video_shape) > 3 else 3
  if isinstance(m, ViViT):
    return _vivit_macs(m, grid, channels)
  return _mae_macs(m, grid, channels)


def count_params(model: ModelOrConfig, video_shape: Sequence[int]) -> int:
  """Trainable parameters, counted from the shapes `model.init` would create."""
  m = _as_model(model)
  video = jax.ShapeDtypeStruct((1,) + tuple(video_shape), jnp.float32)
  if isinstance(m, MaskedVideoAutoencoder):
    grid = emb.token_grid(video_shape, m.patch_size, m.tubelet_size)
    n = int(np.prod(grid))
    count = masking.num_masked_tokens(grid, m.mask_type, m.mask_ratio, m.future_frames)
    mask = np.zeros((1, n), bool)
    mask[0, :count] = True
    shapes = jax.eval_shape(lambda v: m.init(jax.random.key(0), v, mask), video)
  else:
    shapes = jax.eval_shape(lambda v: m.init(jax.random.key(0), v), video)
  leaves = jax.tree_util.tree_leaves(nn.unbox(shapes["params"]))
  return int(sum(np.prod(x.shape) for x in leaves))


def summary(model: ModelOrConfig, video_shape: Sequence[int]) -> Dict[str, float]:
  """Params (millions), GMACs ("GFLOPs" in the papers) and hardware GFLOPs per view."""
  m = _as_model(model)
  macs = forward_macs(m, video_shape)
  return {
      "params_m": count_params(m, video_shape) / 1e6,
      "gmacs": macs / 1e9,
      "forward_gflops": 2 * macs / 1e9,
      "train_gflops": 6 * macs / 1e9,
  }
