"""Starting weights for a fresh run: `config.init_from.{kind, path, inflation}`.

  pretrain   `path` is a pretraining workdir of this project (or its
             `checkpoints/` folder, or one step folder in it): the newest
             step's `params` are read on the host and the encoder goes into
             the classifier (`transfer.encoder_to_classifier`).
  model      `path` is a model checkpoint dir (`config.json` + `params/`, e.g.
             a converted Hugging Face model): a VideoMAE's encoder goes in as
             above; a ViViT must match the model exactly.
  image_vit  `path` is a 2D ViT model checkpoint dir; its patch kernel and
             positions are inflated (`transfer.inflate_image_vit`).

Every route raises `checkpoints.ParamMismatchError` listing the parameter
names and shapes that differ. Only parameters are taken; the optimiser state
stays fresh. The result is placed with the state's shardings (any mesh).
"""

import os
from typing import Any, Sequence

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from vivit_jax import checkpoints
from vivit_jax.models import transfer
from vivit_jax.train import checkpointing


def _newest_state_dir(path: str) -> epath.Path:
  """The `state` item folder of the newest step under a pretraining `path`."""
  path = epath.Path(path)
  candidates = [path, path / checkpointing.CHECKPOINTS_DIR]
  for base in candidates:
    if (base / checkpointing.STATE_ITEM).is_dir():
      return base / checkpointing.STATE_ITEM
    if base.is_dir():
      steps = sorted(int(p.name) for p in base.iterdir() if p.name.isdigit())
      if steps:
        return base / str(steps[-1]) / checkpointing.STATE_ITEM
  raise FileNotFoundError(f"init_from.path={str(path)!r} holds no training checkpoint "
                          f"(expected {checkpointing.CHECKPOINTS_DIR}/<step>/"
                          f"{checkpointing.STATE_ITEM})")


def read_pretrained_params(path: str) -> Any:
  """The `params` of the newest training checkpoint under `path`, as numpy."""
  state_dir = _newest_state_dir(path)
  checkpointer = ocp.PyTreeCheckpointer()
  stored = checkpointing._stored_tree(checkpointer.metadata(state_dir))  # pylint: disable=protected-access
  params_meta = stored["params"]
  item = {"params": params_meta}
  restore_args = jax.tree_util.tree_map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray),
                                        item)
  restored = checkpointer.restore(state_dir, args=ocp.args.PyTreeRestore(
      item=item, restore_args=restore_args, partial_restore=True))
  return restored["params"]


def _read_model_checkpoint(path: str):
  if not os.path.isdir(path):
    raise FileNotFoundError(f"init_from.path={path!r} is not a directory")
  return checkpoints.load_model_checkpoint(path)


def place_like(params: Any, like: Any) -> Any:
  """`params` (host or device arrays) placed as the arrays of `like` are."""
  def place(value, target):
    if isinstance(value, jax.Array) and value.sharding == target.sharding:
      return value
    host = np.asarray(value, dtype=target.dtype)
    return jax.make_array_from_callback(target.shape, target.sharding, lambda i: host[i])
  return jax.tree_util.tree_map(place, params, like)


def initial_params(init_config, fresh_params: Any, spatial_grid: Sequence[int]) -> Any:
  """Parameters to start from, same tree and placement as `fresh_params`.

  Args:
    init_config: `config.init_from` (`kind`, `path`, `inflation`).
    fresh_params: the freshly initialised (sharded) classifier parameters.
    spatial_grid: `(nh, nw)` tokens per frame of the classifier's input, for
      resizing a 2D ViT's position table.

  Raises:
    ParamMismatchError: listing every differing parameter name and shape.
  """
  kind, path = init_config.kind, init_config.path
  if kind == "pretrain":
    params = transfer.encoder_to_classifier(fresh_params, read_pretrained_params(path))
  elif kind == "model":
    model_config, stored = _read_model_checkpoint(path)
    name = dict(model_config.get("model", {})).get("name", "vivit")
    if name == "videomae":
      params = transfer.encoder_to_classifier(fresh_params, stored)
    else:
      checkpoints.check_params_match(fresh_params, stored, f"model checkpoint {path}")
      params = stored
  elif kind == "image_vit":
    _, stored = _read_model_checkpoint(path)
    params = transfer.inflate_image_vit(fresh_params, stored, spatial_grid,
                                        init_config.inflation)
  else:
    raise ValueError(f"init_from.kind must be 'pretrain', 'model' or 'image_vit', "
                     f"got {kind!r}")
  return place_like(params, fresh_params)
