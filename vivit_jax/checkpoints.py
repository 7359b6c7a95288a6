"""Model checkpoints: a folder with the parameters (Orbax) and the config beside them.

Layout of a model checkpoint directory (what converters write and what the
evaluator, predictor and fine-tuning initialiser read):

    CKPT_DIR/
      config.json   {"model": {...model config...}, optional "labels": [...], "source": ...}
      params/       an Orbax PyTree checkpoint of the float parameters

Training checkpoints (`vivit_jax.train`) hold the whole train state and are
managed by an Orbax `CheckpointManager`; this module is the small common
ground: saving/loading params with their config, and saying precisely how a
parameter tree differs from the one a model expects.
"""

import json
import os
from typing import Any, Dict, Mapping, Optional, Tuple

import flax.linen as nn
import jax
import numpy as np
import orbax.checkpoint as ocp

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
      json.dump(dict(config), f, indent=2, sort_keys=True, default=_json_default)
  return directory


def load_model_config(directory: str) -> Dict[str, Any]:
  path = os.path.join(directory, CONFIG_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{directory} is not a model checkpoint: no {CONFIG_FILE}")
  with open(path) as f:
    return json.load(f)


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
  stored = checkpointer.metadata(path)
  stored = getattr(stored, "item_metadata", stored)
  stored = getattr(stored, "tree", stored)
  if expected_params is not None:
    expected_params = nn.unbox(expected_params)
    check_params_match(expected_params, stored, f"checkpoint {directory}")
    target = jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)),
        expected_params)
    return config, checkpointer.restore(path, target)
  return config, checkpointer.restore(path)


def _json_default(value):
  if isinstance(value, (np.integer, np.floating)):
    return value.item()
  if isinstance(value, np.ndarray):
    return value.tolist()
  if isinstance(value, type) or callable(value):
    return getattr(value, "__name__", str(value))
  return str(value)
