"""Model checkpoints: a folder with the parameters (Orbax) and the config beside them.

Layout of a model checkpoint directory (what converters write and what the
evaluator, predictor and fine-tuning initialiser read):

    CKPT_DIR/
      config.json   {"model": {...model config...}, optional "labels": [...], "source": ...}
      params/       an Orbax PyTree checkpoint of the float parameters

Training checkpoints (`checkpoints/train.py`) hold the whole train state and
are managed by an Orbax `CheckpointManager`; this module is the common
ground: saving/loading params with their config, `load_model` (the one
"build the model, take its parameter shapes, restore into them" sequence
every reader uses), and saying precisely how a parameter tree differs from
the one a model expects.

    model, params, meta = load_model("ckpt_dir", dtype="bfloat16")
    logits = model.apply({"params": params}, video)     # (B, T, H, W, C)
"""

import json
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import flax.linen as nn
import jax
import numpy as np
import orbax.checkpoint as ocp

from vivit_jax.user_errors import UserError, read_json

CONFIG_FILE = "config.json"
PARAMS_DIR = "params"


class ParamMismatchError(ValueError):
  """A parameter tree does not have the names and shapes a model expects."""


def flatten_params(params: Mapping[str, Any]) -> Dict[str, Any]:
  """`{"a/b/kernel": array}` from a nested dict (boxed values are unboxed)."""
  flat = {}
  for path, value in jax.tree_util.tree_flatten_with_path(nn.unbox(params))[0]:
    flat["/".join(str(getattr(k, "key", getattr(k, "name", k))) for k in path)] = value
  return flat


def unflatten_params(flat: Mapping[str, Any]) -> Dict[str, Any]:
  """Inverse of `flatten_params`."""
  tree: Dict[str, Any] = {}
  for name, value in flat.items():
    node = tree
    *parents, leaf = name.split("/")
    for part in parents:
      node = node.setdefault(part, {})
    node[leaf] = value
  return tree


def describe_mismatch(expected: Mapping[str, Any], actual: Mapping[str, Any],
                      limit: int = 50) -> Optional[str]:
  """None if both trees have the same names and shapes, else a readable list."""
  want = {k: tuple(np.shape(v)) for k, v in flatten_params(expected).items()}
  got = {k: tuple(np.shape(v)) for k, v in flatten_params(actual).items()}
  lines = [f"  missing from checkpoint: {k} {want[k]}" for k in sorted(set(want) - set(got))]
  lines += [f"  unexpected in checkpoint: {k} {got[k]}" for k in sorted(set(got) - set(want))]
  lines += [f"  shape differs: {k} model {want[k]} vs checkpoint {got[k]}"
            for k in sorted(set(want) & set(got)) if want[k] != got[k]]
  if not lines:
    return None
  more = f"\n  ... and {len(lines) - limit} more" if len(lines) > limit else ""
  return f"{len(lines)} parameter difference(s):\n" + "\n".join(lines[:limit]) + more


def check_params_match(expected, actual, what: str = "checkpoint") -> None:
  """Raises `ParamMismatchError` naming every differing parameter."""
  problem = describe_mismatch(expected, actual)
  if problem:
    raise ParamMismatchError(f"{what} does not match the model: {problem}")


def save_model_checkpoint(directory: str, params, config: Mapping[str, Any],
                          force: bool = False) -> str:
  """Writes `params` (float arrays) and `config` (JSON-able) under `directory`."""
  directory = os.path.abspath(directory)
  os.makedirs(directory, exist_ok=True)
  params = jax.tree_util.tree_map(np.asarray, nn.unbox(params))
  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(os.path.join(directory, PARAMS_DIR), params, force=force)
  checkpointer.wait_until_finished()
  if jax.process_index() == 0:
    with open(os.path.join(directory, CONFIG_FILE), "w") as f:
      json.dump(dict(config), f, indent=2, sort_keys=True, default=json_default)
  return directory


def abstract_like(tree) -> Any:
  """`jax.ShapeDtypeStruct`s (with shardings, where the leaves have them) mirroring `tree`."""
  return jax.tree_util.tree_map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)),
      tree)


def stored_tree(metadata) -> Any:
  """The plain tree of Orbax checkpoint metadata (Orbax wraps it in objects)."""
  metadata = getattr(metadata, "item_metadata", metadata)
  return getattr(metadata, "tree", metadata)


TRAIN_CHECKPOINTS_DIR = "checkpoints"  # WORKDIR/checkpoints of a training run
TRAIN_MODEL_DIR = "model"  # WORKDIR/model: the model checkpoint a training run writes


def load_model_config(directory: str) -> Dict[str, Any]:
  """The `config.json` of a model checkpoint (FileNotFoundError naming the dir).

  A training workdir (`checkpoints/` and a training `config.json`, no
  `params/`) is refused with a line naming `WORKDIR/model`, its model
  checkpoint.
  """
  if (os.path.isdir(os.path.join(directory, TRAIN_CHECKPOINTS_DIR))
      and not os.path.isdir(os.path.join(directory, PARAMS_DIR))):
    model_dir = os.path.join(directory.rstrip(os.sep) or directory, TRAIN_MODEL_DIR)
    found = ("" if os.path.exists(os.path.join(model_dir, CONFIG_FILE))
             else " (not written yet: the run writes it when it finishes)")
    raise FileNotFoundError(f"{directory} is a training workdir, not a model checkpoint: "
                            f"pass {model_dir}{found}")
  path = os.path.join(directory, CONFIG_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{directory} is not a model checkpoint: no {CONFIG_FILE}")
  return read_json(path, f"restore {CONFIG_FILE} from where the checkpoint came from, or "
                   "write the model checkpoint again")


def load_model_checkpoint(directory: str, expected_params=None) -> Tuple[Dict[str, Any], Any]:
  """Reads `(config, params)` from a model checkpoint directory.

  With `expected_params` (a tree of arrays or `jax.ShapeDtypeStruct`s, e.g.
  from `jax.eval_shape(model.init, ...)`), the stored tree must have exactly
  the same names and shapes, else `ParamMismatchError` lists the differences;
  arrays are then restored with the expected shardings if they carry any.
  """
  config = load_model_config(directory)
  path = os.path.join(os.path.abspath(directory), PARAMS_DIR)
  checkpointer = ocp.StandardCheckpointer()
  stored = stored_tree(checkpointer.metadata(path))
  if expected_params is not None:
    expected_params = nn.unbox(expected_params)
    check_params_match(expected_params, stored, f"checkpoint {directory}")
    return config, checkpointer.restore(path, abstract_like(expected_params))
  return config, checkpointer.restore(path)


def video_shape_of(config: Mapping[str, Any], where: str = CONFIG_FILE) -> Tuple[int, ...]:
  """`(T, H, W, C)` a checkpoint's model takes, from its `"input"`, else `"source"` block."""
  source = config.get("source") or {}
  block = dict(source, **{k: v for k, v in (config.get("input") or {}).items()
                          if v is not None})
  if block.get("num_frames") is None or block.get("image_size") is None:
    raise ValueError(f"{where} says no num_frames / image_size (neither \"input\" nor "
                     "\"source\"); pass the video shape")
  size = block["image_size"]
  h, w = (size, size) if isinstance(size, (int, np.integer)) else size
  return (int(block["num_frames"]), int(h), int(w), int(source.get("num_channels", 3)))


def load_model(directory: str, video_shape: Optional[Sequence[int]] = None,
               target: Any = None, **overrides) -> Tuple[nn.Module, Any, Dict[str, Any]]:
  """`(model, params, meta)` from a model checkpoint directory.

  Builds the model of `config.json` (with `overrides` of model config keys,
  e.g. `dtype="bfloat16"`, `attention_impl="cudnn"`; None values ignored),
  takes the parameter shapes it creates for clips of `video_shape`
  `(T, H, W, C)` (default: `video_shape_of(meta)`) and restores the stored
  parameters into them.

  Args:
    target: optional tree of arrays or `jax.ShapeDtypeStruct`s with
      shardings (e.g. a train state's `params`): restore onto those
      shardings instead of the default device.

  Returns:
    The Flax module, its parameters (unboxed arrays) and `meta`, the whole
    `config.json` ("model", optional "labels", "input", "source").

  Raises:
    FileNotFoundError (not a model checkpoint), ValueError (bad config),
    ParamMismatchError (names / shapes differ; every difference listed).
  """
  from vivit_jax.models import registry  # pylint: disable=g-import-not-at-top
  meta = load_model_config(directory)
  where = os.path.join(directory, CONFIG_FILE)
  model_config = dict(meta["model"])
  model_config.update({k: v for k, v in overrides.items() if v is not None})
  model = registry.build_model(model_config)
  shape = video_shape_of(meta, where) if video_shape is None else tuple(video_shape)
  if meta.get("quantization"):  # an int8 checkpoint of `vivit-compress`
    from vivit_jax.compress import quantize  # pylint: disable=g-import-not-at-top
    qmodel, params = quantize.load_quantized(directory, model, shape, meta)
    return qmodel, params, meta
  if target is None:
    target = registry.abstract_params(model, shape)
  _, params = load_model_checkpoint(directory, expected_params=target)
  return model, params, meta


def read_labels(path: Optional[str], num_classes: Optional[int] = None) -> Optional[List[str]]:
  """Class names from a file, one per line (blank lines skipped); None for no path.

  With `num_classes`, a file with another count raises ValueError naming both.
  """
  if path is None:
    return None
  with open(path) as f:
    labels = [line.strip() for line in f if line.strip()]
  if num_classes is not None and len(labels) != num_classes:
    raise UserError(f"{len(labels)} labels, but the model has {num_classes} classes", path,
                    f"list {num_classes} class names, one per line, in the model's class order")
  return labels


def json_default(value):
  """`json.dump(default=...)` for numpy values, dtypes and callables (by name)."""
  if isinstance(value, (np.integer, np.floating)):
    return value.item()
  if isinstance(value, np.ndarray):
    return value.tolist()
  if isinstance(value, type) or callable(value):
    return getattr(value, "__name__", str(value))
  return str(value)
