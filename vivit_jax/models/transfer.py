"""Initialising a ViViT classifier from other trained models.

  encoder_to_classifier  a masked-autoencoder encoder (this project's, or a
                         converted VideoMAE) -> the classifier's tubelet
                         embedding and encoder blocks; head stays fresh.
  inflate_image_vit      a 2D image ViT in this project's naming -> any
                         ViViT variant: patch kernel inflated to a tubelet
                         kernel, spatial position embedding resized.

All functions take and return plain nested dicts of arrays, and raise
`vivit_jax.common.params.ParamMismatchError` naming the parameters that do not fit.
"""

import copy
from typing import Any, Dict, Mapping, Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from vivit_jax.common import params as params_lib
from vivit_jax.models import embedding as emb

Params = Dict[str, Any]


def _copy_matching(target: Mapping, source: Mapping, what: str,
                   allow_missing: Sequence[str] = ()) -> Params:
  """Copies `source` leaves into `target` where `target` has them; all must fit.

  A name of `target` absent from `source` is an error unless listed in
  `allow_missing` (prefix match); extra `source` names are ignored.
  """
  tgt = params_lib.flatten_params(target)
  src = params_lib.flatten_params(source)
  problems = []
  for name, value in tgt.items():
    if name in src:
      if tuple(np.shape(src[name])) != tuple(np.shape(value)):
        problems.append(f"  shape differs: {name} model {tuple(np.shape(value))} vs "
                        f"{what} {tuple(np.shape(src[name]))}")
      else:
        tgt[name] = jnp.asarray(src[name], jnp.asarray(value).dtype)
    elif not any(name.startswith(p) for p in allow_missing):
      problems.append(f"  missing from {what}: {name} {tuple(np.shape(value))}")
  if problems:
    raise params_lib.ParamMismatchError(
        f"{what} does not fit the classifier: {len(problems)} difference(s):\n"
        + "\n".join(problems))
  return params_lib.unflatten_params(tgt)


def encoder_to_classifier(classifier_params: Mapping, mae_params: Mapping) -> Params:
  """Loads a pretrained MAE encoder into a `spatio_temporal` ViViT classifier.

  Copies `embedding`, `pos_embedding` (when learned in both) and every
  `encoder` block. A learned classifier table over a fixed-sinusoid encoder
  starts as that sinusoid table (the positions the encoder was trained
  with; a CLS row keeps its fresh value). The classifier's `head`,
  `fc_norm`, `pre_logits` and `cls_token` keep their fresh values; so does
  `encoder/norm` when the pretrained encoder had none (VideoMAE fine-tunes
  with `fc_norm` instead).
  """
  classifier_params = nn.unbox(classifier_params)
  keep_fresh = ("head", "fc_norm", "pre_logits", "cls_token", "encoder/norm")
  if "pos_embedding" in classifier_params and "pos_embedding" not in mae_params:
    keep_fresh += ("pos_embedding",)
    classifier_params = _with_sinusoid_positions(classifier_params)
  return _copy_matching(classifier_params, nn.unbox(mae_params), "pretrained encoder",
                        allow_missing=keep_fresh)


def _with_sinusoid_positions(classifier_params: Mapping) -> Params:
  """`classifier_params` with the patch rows of its learned
  `pos_embedding/embedding` `(prefix + N, D)` set to `sinusoid_table(N, D)`."""
  table = jnp.asarray(classifier_params["pos_embedding"]["embedding"])
  prefix = 1 if "cls_token" in classifier_params else 0
  sinusoid = emb.sinusoid_table(table.shape[0] - prefix, table.shape[1])
  out = dict(classifier_params)
  out["pos_embedding"] = dict(classifier_params["pos_embedding"],
                              embedding=table.at[prefix:].set(jnp.asarray(sinusoid, table.dtype)))
  return out


def inflate_image_vit(classifier_params: Mapping, vit_params: Mapping,
                      spatial_grid: Sequence[int], method: str = "central_frame",
                      num_prefix_tokens: int = 1, interpolation: str = "linear") -> Params:
  """Initialises any ViViT variant from a 2D ViT in this project's naming.

  Args:
    classifier_params: the fresh ViViT tree (sets every shape).
    vit_params: a 2D ViT tree: `embedding/projection/kernel (ph, pw, C, D)` or
      `(1, ph, pw, C, D)`, `pos_embedding/embedding (prefix + nh*nw, D)`,
      `cls_token`, `encoder/block_XX/...`, `encoder/norm`.
    spatial_grid: `(nh, nw)` tokens per frame of the video model; the ViT's
      own grid is taken as square.
    method: "central_frame" or "average" tubelet inflation.
    num_prefix_tokens: tokens before the patch grid in the ViT's position
      table (1 for a CLS token, 0 for none).
    interpolation: `jax.image.resize` method for the spatial grid.

  Spatial encoders (all variants) take the ViT blocks; the temporal encoder
  of `factorised_encoder` and the temporal attention of
  `factorised_self_attention` keep their fresh init, as in ViViT.
  """
  target = nn.unbox(classifier_params)
  vit = copy.deepcopy(params_lib.flatten_params(vit_params))
  flat_target = params_lib.flatten_params(target)

  kernel = np.asarray(vit.pop("embedding/projection/kernel"))
  kernel = kernel[0] if kernel.ndim == 5 else kernel
  tubelet = flat_target["embedding/projection/kernel"].shape[0]
  vit["embedding/projection/kernel"] = emb.inflate_2d_kernel(kernel, tubelet, method)

  pos_name = "pos_embedding/embedding"
  if pos_name in vit and pos_name in flat_target:
    vit_pos = np.asarray(vit.pop(pos_name))
    want = flat_target[pos_name].shape
    target_prefix = 1 if "cls_token" in target else 0
    old_side = int(round(np.sqrt(vit_pos.shape[0] - num_prefix_tokens)))
    grid_pos = emb.interpolate_grid_embedding(jnp.asarray(vit_pos[num_prefix_tokens:]),
                                              (old_side, old_side), tuple(spatial_grid),
                                              interpolation)
    # Model 1's table spans (nt, nh, nw): the spatial table repeats over time.
    repeats = (want[0] - target_prefix) // int(np.prod(spatial_grid))
    grid_pos = jnp.tile(grid_pos, (repeats, 1))
    prefix = jnp.asarray(vit_pos[:num_prefix_tokens][:target_prefix])
    if target_prefix and not num_prefix_tokens:
      prefix = jnp.zeros((1, want[1]), grid_pos.dtype)
    vit[pos_name] = jnp.concatenate([prefix, grid_pos], axis=0)

  # Model 3 blocks: the ViT attention becomes the spatial attention.
  for name in list(vit):
    if "/attention/" in name and "encoder/block_" in name:
      spatial = name.replace("/attention/", "/spatial_attention/")
      if spatial in flat_target and name not in flat_target:
        vit[spatial] = vit.pop(name)
    if "/norm_attention/" in name and name not in flat_target:
      spatial = name.replace("/norm_attention/", "/norm_spatial/")
      if spatial in flat_target:
        vit[spatial] = vit.pop(name)

  fresh = ("head", "fc_norm", "pre_logits", "temporal_", "cls_token")
  fresh += tuple(n for n in flat_target if "/temporal_attention/" in n or "/norm_temporal/" in n)
  return _copy_matching(target, params_lib.unflatten_params(vit), "2D ViT",
                        allow_missing=fresh)
