"""Where things lie on disk: a model checkpoint dir and a training workdir.

    CKPT_DIR/config.json, CKPT_DIR/params/       a model checkpoint (`model.py`)
    WORKDIR/checkpoints/<step>/{state, data}     training checkpoints (`train.py`)
    WORKDIR/model/                               the model checkpoint a run writes
    WORKDIR/config.json                          the run's resolved config

`resolve_checkpoint(path)` says which of the two a path is (what
`vivit-evaluate --checkpoint` and the evaluator's `restore` take).
"""

import os
from typing import Tuple

CONFIG_FILE = "config.json"  # CKPT_DIR/config.json (and WORKDIR/config.json)
PARAMS_DIR = "params"  # CKPT_DIR/params: the Orbax parameter tree
CHECKPOINTS_DIR = "checkpoints"  # WORKDIR/checkpoints of a training run
MODEL_DIR = "model"  # WORKDIR/model: the model checkpoint a training run writes


def absolute(path: str) -> str:
  """A local `path` made absolute (Orbax refuses relative ones); a URL such as
  gs://bucket/run as given."""
  return path if "://" in str(path) else os.path.abspath(path)


def resolve_checkpoint(path: str, allow_empty_workdir: bool = False) -> Tuple[str, str]:
  """`("model", dir)` for a model checkpoint, `("workdir", workdir)` for training ones.

  Raises FileNotFoundError saying what was looked for (unless
  `allow_empty_workdir`, where any directory is a workdir).
  """
  path = os.path.abspath(path)
  if os.path.isfile(os.path.join(path, CONFIG_FILE)) and os.path.isdir(
      os.path.join(path, PARAMS_DIR)):
    return "model", path
  ckpt_dir = CHECKPOINTS_DIR
  if os.path.isdir(os.path.join(path, ckpt_dir)):
    return "workdir", path
  if os.path.basename(path) == ckpt_dir and os.path.isdir(path):
    return "workdir", os.path.dirname(path)
  if allow_empty_workdir:
    return "workdir", path
  raise FileNotFoundError(
      f"--checkpoint={path} is neither a model checkpoint ({CONFIG_FILE} + "
      f"{PARAMS_DIR}/) nor a training workdir (with {ckpt_dir}/)")
