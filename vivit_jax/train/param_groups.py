"""Per-parameter optimiser groups, decided by parameter path.

A path is the tuple of dict keys from the params root, e.g.
`("encoder", "block_03", "mlp", "fc1", "kernel")`. All functions accept
parameter trees of arrays, `jax.ShapeDtypeStruct`s or `nn.LogicallyPartitioned`
boxes of either, and return trees shaped like the unboxed parameters.

Weight decay is off for biases (`bias`), norm scales (`scale`), position
embeddings (any path component containing `pos_embedding`), the CLS and mask
tokens (`cls_token`, `temporal_cls_token`, `mask_token`) and every parameter
with fewer than two dimensions.

Layer ids for layer-wise lr decay (BEiT-style), with S spatial/encoder blocks
and T temporal-encoder blocks:
  embedding, pos_embedding, cls_token                       -> 0
  encoder/block_NN                                          -> NN + 1
  encoder/norm                                              -> S + 1
  temporal_cls_token, temporal_pos_embedding (with a
    temporal_encoder, i.e. ViViT factorised_encoder)        -> S
  temporal_pos_embedding (factorised models 3/4)            -> 0
  temporal_encoder/block_NN                                 -> S + NN + 1
  anything else (head, fc_norm, final norms, decoder)       -> S + T + 1
and the lr multiplier of layer i is `layer_decay ** (S + T + 1 - i)`.
"""

import re
from typing import Tuple

import flax.linen as nn
import jax

NO_DECAY_NAMES = ("bias", "scale", "cls_token", "temporal_cls_token", "mask_token")
_BLOCK = re.compile(r"block_(\d+)$")


def path_names(path) -> Tuple[str, ...]:
  """Key path of `jax.tree_util` -> tuple of names."""
  names = []
  for entry in path:
    for attr in ("key", "name", "idx"):
      if hasattr(entry, attr):
        names.append(str(getattr(entry, attr)))
        break
  return tuple(names)


def _named_leaves(params):
  params = nn.unbox(params)
  flat, treedef = jax.tree_util.tree_flatten_with_path(params)
  return [(path_names(p), leaf) for p, leaf in flat], treedef


def decays(names: Tuple[str, ...], ndim: int) -> bool:
  """Whether the parameter at `names` with `ndim` dimensions gets weight decay."""
  if ndim < 2:
    return False
  if names and names[-1] in NO_DECAY_NAMES:
    return False
  return not any("pos_embedding" in n or n in NO_DECAY_NAMES for n in names)


def weight_decay_mask(params):
  """Tree of bools, True where weight decay applies (see module docstring)."""
  leaves, treedef = _named_leaves(params)
  return jax.tree_util.tree_unflatten(
      treedef, [decays(names, len(leaf.shape)) for names, leaf in leaves])


def _num_blocks(leaves, stack: str) -> int:
  ids = [int(m.group(1)) for names, _ in leaves if len(names) > 1 and names[0] == stack
         for m in [_BLOCK.match(names[1])] if m]
  return max(ids) + 1 if ids else 0


def layer_id(names: Tuple[str, ...], num_spatial: int, num_temporal: int) -> int:
  """Layer id of a parameter path (see module docstring)."""
  top = names[0] if names else ""
  block = _BLOCK.match(names[1]) if len(names) > 1 else None
  if top in ("embedding", "pos_embedding", "cls_token"):
    return 0
  if top in ("temporal_cls_token", "temporal_pos_embedding"):
    return num_spatial if num_temporal else 0
  if top == "encoder":
    return int(block.group(1)) + 1 if block else num_spatial + 1
  if top == "temporal_encoder" and block:
    return num_spatial + int(block.group(1)) + 1
  return num_spatial + num_temporal + 1


def layer_ids(params):
  """Tree of int layer ids and the total `num_layers` (= S + T)."""
  leaves, treedef = _named_leaves(params)
  spatial = _num_blocks(leaves, "encoder")
  temporal = _num_blocks(leaves, "temporal_encoder")
  ids = [layer_id(names, spatial, temporal) for names, _ in leaves]
  return jax.tree_util.tree_unflatten(treedef, ids), spatial + temporal


def layer_decay_scales(params, layer_decay: float):
  """Tree of float lr multipliers `layer_decay ** (num_layers + 1 - layer_id)`."""
  ids, num_layers = layer_ids(params)
  return jax.tree_util.tree_map(lambda i: float(layer_decay ** (num_layers + 1 - i)), ids)
