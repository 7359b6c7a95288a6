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
import numpy as np

from vivit_jax.models import registry
from vivit_jax.models.interface import joint_block_macs  # noqa: F401  (re-exported)

ModelOrConfig = Union[nn.Module, Mapping[str, Any]]


def _as_model(model: ModelOrConfig) -> nn.Module:
  return model if isinstance(model, nn.Module) else registry.build_model(model)


def forward_macs(model: ModelOrConfig, video_shape: Sequence[int]) -> int:
  """Multiply-adds of one forward pass on one clip `(T, H, W, C)` (the model's
  `ModelInterface.forward_macs`)."""
  m = _as_model(model)
  count = registry.interface_of(m).forward_macs
  if count is None:
    raise ValueError(f"{type(m).__name__} has no MAC count (ModelInterface.forward_macs)")
  return int(count(m, tuple(video_shape)))


def count_params(model: ModelOrConfig, video_shape: Sequence[int]) -> int:
  """Trainable parameters, counted from the shapes `model.init` would create."""
  shapes = registry.abstract_params(_as_model(model), video_shape)
  leaves = jax.tree_util.tree_leaves(nn.unbox(shapes))
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
