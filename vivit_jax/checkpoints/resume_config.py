"""Resuming with a changed config: say what changed, refuse what changes the run.

A run that resumes (its workdir has checkpoints) compares its config with the
workdir's `config.json`, the config of the run that wrote them. Every key
that differs is printed, one console line in all:

    resuming with 2 changed config keys (vs WORKDIR/config.json): log.every_steps 50 -> 10, train.batch_size 64 -> 128

Keys that change what is being trained (the model, the optimizer and its
schedule, the number of steps the cosine ends at, the batch, the loss, the
training data stream, the seed) refuse the run with one line unless
`--config.checkpoint.resume_with_changes=True`:

    error: resuming with changed train.batch_size (64 -> 128) (WORKDIR/config.json): pass --config.checkpoint.resume_with_changes=True to continue with the new values, or use a new --workdir

Every key is in that class except those listed in `HARMLESS` (logging, eval,
checkpoint cadence, mesh / sharding / process layout, start-up probes,
`init_from` (unused when resuming), tf.data parallelism, debug), which are
only printed. A key present on one side only is compared as absent (shown
`<absent>`), e.g. a key added to the code since the workdir was written.

The caller writes the new `config.json` only after the checkpoint is
restored, so a refused or failed resume leaves the old one in place.
"""

import json
import os
from typing import Any, Dict, List, Tuple

from vivit_jax.checkpoints import faults
from vivit_jax.common.params import json_default
from vivit_jax.common.errors import read_json

CONFIG_JSON = "config.json"
FLAG = "checkpoint.resume_with_changes"
# Prefixes of dotted keys that do not change what is trained (only printed).
HARMLESS = (
    "log.", "eval.", "checkpoint.", "debug.", "mesh.", "sharding.", "distributed.",
    "init_from.", "train.nan_policy", "train.max_skipped_steps",
    "data.eval_", "data.num_parallel_calls", "data.prefetch_batches", "data.probe_",
    "data.register_modules", "data.tfds_download", "data.tfds_data_dir",
    "data.tfds_manual_dir", "data.class_names", "data.min_", "data.max_skipped",
)
_ABSENT = "<absent>"


def _flatten(tree: Any, prefix: str = "") -> Dict[str, Any]:
  if isinstance(tree, dict):
    out: Dict[str, Any] = {}
    for key, value in tree.items():
      out.update(_flatten(value, f"{prefix}{key}."))
    return out
  return {prefix[:-1]: tree}


def _as_json(config) -> dict:
  data = config.to_dict() if hasattr(config, "to_dict") else dict(config)
  return json.loads(json.dumps(data, default=json_default))


def changed_keys(old: dict, new: dict) -> List[Tuple[str, Any, Any]]:
  """`(key, old, new)` for every dotted key whose value differs, sorted."""
  a, b = _flatten(old), _flatten(new)
  return [(k, a.get(k, _ABSENT), b.get(k, _ABSENT)) for k in sorted(set(a) | set(b))
          if a.get(k, _ABSENT) != b.get(k, _ABSENT)]


def changes_meaning(key: str) -> bool:
  """Whether a change of `key` changes what the resumed run trains (see module docstring)."""
  return not key.startswith(HARMLESS)


def _show(value: Any) -> str:
  text = value if value is _ABSENT else json.dumps(value)
  return text if len(text) <= 60 else text[:57] + "..."


def check(workdir: str, config, console=print) -> List[Tuple[str, Any, Any]]:
  """Prints the keys that differ from `WORKDIR/config.json`; refuses meaningful ones.

  Call only when resuming (the workdir has checkpoints). Returns the changes.

  Raises:
    ResumeConfigError: keys outside `HARMLESS` differ and
      `checkpoint.resume_with_changes` is False.
  """
  path = os.path.join(workdir, CONFIG_JSON)
  if not os.path.exists(path):
    return []
  old = read_json(path, "restore it (every run writes it at start-up), or resume in a new "
                  "--workdir")
  changes = changed_keys(old, _as_json(config))
  if not changes:
    return []
  console(f"resuming with {len(changes)} changed config key(s) (vs {path}): "
          + ", ".join(f"{k} {_show(a)} -> {_show(b)}" for k, a, b in changes))
  meaningful = [(k, a, b) for k, a, b in changes if changes_meaning(k)]
  if meaningful and not bool(config.checkpoint.get("resume_with_changes", False)):
    shown = ", ".join(f"{k} ({_show(a)} -> {_show(b)})" for k, a, b in meaningful)
    raise faults.ResumeConfigError(
        f"resuming with changed {shown}", path,
        f"pass --config.{FLAG}=True to continue with the new values, or use a new --workdir")
  return changes
