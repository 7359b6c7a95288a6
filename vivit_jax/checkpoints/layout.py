"""The layout of a train-state section: its leaf paths and shapes, and how two differ.

`layout(tree)` maps "1/mu/encoder/..." to a shape, for Orbax's stored
metadata and for abstract arrays alike, so `TrainCheckpointer` can say which
section of a checkpoint (`opt_state`, `ema_params`) does not fit this run
and how ("only in the checkpoint: 1/count, 1/mu, 1/nu; only in this run:
1/trace") instead of Orbax's "tree structures do not match".
"""

import jax


def layout(tree) -> dict:
  """`{"a/b/0": shape}` of a state section (stored metadata or abstract arrays)."""
  if tree is None:
    return {}
  out = {}
  for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
    names = [str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path]
    out["/".join(names)] = tuple(getattr(leaf, "shape", ()) or ())
  return out


def _heads(paths: dict, depth: int) -> list:
  """The paths cut to `depth` name levels, in order ("1/mu", "1/nu", ... for depth 2)."""
  heads = []
  for name in paths:
    head = "/".join(name.split("/")[:depth])
    if head not in heads:
      heads.append(head)
  return heads


def _listed(names: list) -> str:
  return ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")


def difference(theirs: dict, ours: dict) -> str:
  """What differs between two layouts, short: the first name level that differs, else shapes."""
  if not theirs or not ours:
    return ("the checkpoint has none, this run has " + _listed(_heads(ours, 2)) if ours
            else "the checkpoint has " + _listed(_heads(theirs, 2)) + ", this run has none")
  deepest = max(name.count("/") + 1 for name in list(theirs) + list(ours))
  for depth in range(1, deepest + 1):
    mine, other = _heads(ours, depth), _heads(theirs, depth)
    only_theirs = [h for h in other if h not in mine]
    only_ours = [h for h in mine if h not in other]
    if only_theirs or only_ours:
      return (f"only in the checkpoint: {_listed(only_theirs) or 'nothing'}; "
              f"only in this run: {_listed(only_ours) or 'nothing'}")
  shapes = [f"{k} checkpoint {theirs[k]} vs run {ours[k]}" for k in theirs if theirs[k] != ours[k]]
  return _listed(shapes)
