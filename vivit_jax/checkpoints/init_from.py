"""Starting weights for a fresh run: `config.init_from.{kind, path, inflation}`.

  pretrain   `path` is a pretraining workdir of this project (or its
             `checkpoints/` folder, or one step folder in it): the newest
             step's `params` are read on the host and the encoder goes into
             the classifier (`transfer.encoder_to_classifier`).
  model      `path` is a model checkpoint dir (`config.json` + `params/`, e.g.
             a converted Hugging Face model): a pretraining model's (VideoMAE's)
             encoder goes in as above; a classifier must match exactly.
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

from vivit_jax.checkpoints import model as checkpoints
from vivit_jax.checkpoints import train as train_checkpoints
from vivit_jax.checkpoints import workdir
from vivit_jax.models import embedding, registry, transfer


def newest_state_dir(path: str) -> epath.Path:
  """The `state` item folder of the newest finalised step under a pretraining `path`
  (a workdir, its `checkpoints/` folder, or one step folder); Orbax lists the steps."""
  path = epath.Path(path)
  state = train_checkpoints.STATE_ITEM
  for base in (path, path / workdir.CHECKPOINTS_DIR):
    if (base / state).is_dir():
      return base / state
    if base.is_dir():
      newest = ocp.path.step.latest_step_metadata(base, ocp.path.step.standard_name_format())
      if newest is not None:
        return epath.Path(newest.path) / state
  raise FileNotFoundError(f"init_from.path={str(path)!r} holds no training checkpoint "
                          f"(expected {workdir.CHECKPOINTS_DIR}/<step>/{state})")


def read_pretrained_params(path: str) -> Any:
  """The `params` of the newest training checkpoint under `path`, as numpy."""
  state_dir = newest_state_dir(path)
  checkpointer = ocp.PyTreeCheckpointer()
  stored = checkpoints.stored_tree(checkpointer.metadata(state_dir))
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
  path = workdir.absolute(path) if path else path
  if kind == "pretrain":
    params = transfer.encoder_to_classifier(fresh_params, read_pretrained_params(path))
  elif kind == "model":
    model_config, stored = _read_model_checkpoint(path)
    if registry.objective_of(dict(model_config.get("model", {}))) == "pretrain":
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


def initialise_state(config, state, video_shape: Sequence[int]):
  """`state` with `config.init_from`'s parameters (and EMA, if kept) put in place.

  `video_shape`: `(T, H, W, C)` of the model's clips (for a 2D ViT's
  position table). Returns `state` unchanged when `init_from.kind` is empty.
  """
  if not config.init_from.kind:
    return state
  grid = embedding.token_grid(video_shape, config.model.patch_size,
                              config.model.get("tubelet_size", 1))
  params = initial_params(config.init_from, state.params, grid[1:])
  ema = (jax.tree_util.tree_map(jax.numpy.copy, params) if state.ema_params is not None
         else None)
  return state.replace(params=params, ema_params=ema)
