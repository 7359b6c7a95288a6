"""Parameter trees: names, comparison, shapes; JSON of numpy values.

A parameter tree is a nested dict of arrays (Flax `params`, possibly boxed);
its flat form names each leaf by its path, `"encoder/block_00/mlp/fc1/kernel"`.

  flatten_params / unflatten_params   nested dict <-> `{"a/b/kernel": array}`.
  describe_mismatch / check_params_match   the names and shapes that differ
                     between two trees (`ParamMismatchError` lists them all).
  abstract_like      `jax.ShapeDtypeStruct`s (with shardings) mirroring a tree.
  param_bytes        bytes of all parameter arrays.
  json_default       `json.dump(default=...)` for numpy values, dtypes, callables.

Imports jax, flax and numpy only (nothing of the package).
"""

from typing import Any, Dict, Mapping, Optional

import flax.linen as nn
import jax
import numpy as np


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


def abstract_like(tree) -> Any:
  """`jax.ShapeDtypeStruct`s (with shardings, where the leaves have them) mirroring `tree`."""
  return jax.tree_util.tree_map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)),
      tree)



def param_bytes(params) -> int:
  """Bytes of all parameter arrays."""
  return int(sum(np.dtype(x.dtype).itemsize * int(np.prod(x.shape))
                 for x in jax.tree_util.tree_leaves(params)))


def json_default(value):
  """`json.dump(default=...)` for numpy values, dtypes and callables (by name)."""
  if isinstance(value, (np.integer, np.floating)):
    return value.item()
  if isinstance(value, np.ndarray):
    return value.tolist()
  if isinstance(value, type) or callable(value):
    return getattr(value, "__name__", str(value))
  return str(value)
