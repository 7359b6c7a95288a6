"""Start-up checks of the main job: every user mistake found before anything
is compiled, trained or written, as a `UserError` naming the key and the fix.

`check(config, workdir)` runs, in order: the config's values
(`experiment.validate`), the data config, the model config, the mesh
against the devices, `train.batch_size` / `eval.batch_size` against the
batch-sharding devices, `data.num_frames` / `data.image_size` against the
model's tubelet and patch, `init_from.path` on a fresh run, and the eval
split (built once, as the first eval will build it: missing or empty files,
labels, decodability). The train split is checked when its iterator is built,
still before the first step (`train_input`).
"""

import contextlib
import math
import os
import re
from typing import Sequence, Tuple

import jax

from vivit_jax.checkpoints import workdir as workdir_names
from vivit_jax.common.errors import UserError
from vivit_jax.models import build_model
from vivit_jax.models import embedding
from vivit_jax.train import experiment, objectives
from vivit_jax.train.mesh import BATCH_AXES, MESH_AXES, resolve_mesh_shape

_SECTIONS = ("data", "model", "train", "eval", "optimizer", "checkpoint", "log", "mesh",
             "init_from", "distill", "sharding", "distributed", "debug", "mode", "seed")
# Where each source reads its split from: (train key, eval key).
SPLIT_KEYS = {"tfrecord": ("data.train_files", "data.eval_files"),
              "video_list": ("data.train_list", "data.eval_list"),
              "tfds": ("data.train_split", "data.eval_split")}


def _key_in(message: str) -> str:
  """The first dotted config key (`data.num_frames`) a message names, or ""."""
  pattern = r"\b((?:%s)(?:\.\w+)*)\b" % "|".join(_SECTIONS)
  match = re.search(pattern, message)
  return match.group(1) if match else ""


@contextlib.contextmanager
def expected(where: str = "", fix: str = "", errors=(ValueError, FileNotFoundError)):
  """Turns `errors` raised inside into a `UserError` (a `UserError` passes as is).

  `where` defaults to the config key the message names; `fix` to changing it.
  """
  try:
    yield
  except UserError:
    raise
  except errors as error:
    message = " ".join(str(error).split())
    key = where or _key_in(message)
    raise UserError(message, f"--config.{key}" if key and not where else (where or "config"),
                    fix or (f"change --config.{key}" if key else
                            "see vivit_jax/train/experiment.py")) from error


def _multiples(divisor: int, value: int) -> str:
  low = max(divisor, value // divisor * divisor)
  high = (value // divisor + 1) * divisor
  return f"{low} or {high}" if low != high else str(low)


def batch_divisor(config, num_devices: int, process_count: int) -> Tuple[int, int]:
  """`(divisor, batch devices)`: global batches must be multiples of `divisor`."""
  shape = dict(zip(MESH_AXES, resolve_mesh_shape(config.mesh.shape, num_devices)))
  batch_devices = math.prod(shape[a] for a in BATCH_AXES)
  return math.lcm(batch_devices, process_count), batch_devices


def check_batches(config, num_devices: int, process_count: int = 1) -> None:
  """`train.batch_size` and `eval.batch_size` split evenly over the batch devices."""
  divisor, batch_devices = batch_divisor(config, num_devices, process_count)
  keys = ["eval.batch_size"]
  if objectives.run_mode(config) == "train":
    keys.insert(0, "train.batch_size")
  for key in keys:
    section, name = key.split(".")
    value = int(config[section][name])
    if value % divisor:
      over = (f"the {batch_devices} devices of mesh axes {BATCH_AXES}" if process_count == 1
              else f"{batch_devices} batch devices and {process_count} processes")
      raise UserError(f"{key}={value} does not split over {over}", f"--config.{key}",
                      f"use a multiple of {divisor}, e.g. {_multiples(divisor, value)}")


def check_video_shape(config, model) -> None:
  """`data.num_frames` / `data.image_size` are whole tubelets / patches of `model`."""
  patch, tubelet = getattr(model, "patch_size", None), getattr(model, "tubelet_size", None)
  stride = int(getattr(model, "frame_stride", 1) or 1)
  if tubelet is not None:
    frames = -(-int(config.data.num_frames) // stride)
    if frames % int(tubelet):
      per = f" (after model.frame_stride={stride}: {frames})" if stride > 1 else ""
      raise UserError(
          f"data.num_frames={config.data.num_frames}{per} is not a multiple of "
          f"model.tubelet_size={tubelet}", "--config.data.num_frames",
          f"use a multiple of {int(tubelet) * stride}, e.g. "
          f"{_multiples(int(tubelet) * stride, int(config.data.num_frames))}, or change "
          "model.tubelet_size")
  if patch is not None:
    for side in sorted(set(embedding.as_pair(patch))):
      if int(config.data.image_size) % int(side):
        raise UserError(
            f"data.image_size={config.data.image_size} is not a multiple of "
            f"model.patch_size={patch}", "--config.data.image_size",
            f"use a multiple of {side}, e.g. {_multiples(int(side), config.data.image_size)}")


def _has_checkpoints(workdir: str) -> bool:
  directory = os.path.join(workdir, workdir_names.CHECKPOINTS_DIR)
  return os.path.isdir(directory) and any(n.isdigit() for n in os.listdir(directory))


def check_init_from(config, workdir: str) -> None:
  """A fresh run's `init_from.path` exists (a resumed run does not read it)."""
  if not config.init_from.kind or _has_checkpoints(workdir):
    return
  if not os.path.exists(config.init_from.path):
    raise UserError(f"init_from.path={config.init_from.path!r} does not exist",
                    "--config.init_from.path",
                    f"pass the {config.init_from.kind} checkpoint to start from, or "
                    "--config.init_from.kind= for random init")


def split_key(config, train: bool) -> str:
  """The config key naming the train / eval split of `data.source`."""
  return SPLIT_KEYS.get(config.data.source, ("data.source", "data.source"))[0 if train else 1]


def _fix_for(key: str) -> str:
  if key.endswith("_files"):
    return f"point --config.{key} at existing TFRecords (a glob, e.g. /data/eval-*.tfrecord)"
  if key.endswith("_list"):
    return f"point --config.{key} at a list file of `path label` lines"
  return f"check --config.{key} and the data it names"


def open_input(config, train: bool, state=None):
  """`inputs.create_iterator`, its start-up failures as a `UserError` naming the split."""
  from vivit_jax.train import inputs  # pylint: disable=import-outside-toplevel
  key = split_key(config, train)
  try:
    with expected(f"--config.{key}", _fix_for(key)):
      return inputs.create_iterator(config, train=train, state=state)
  except UserError as error:
    named = _key_in(error.what)  # e.g. data.num_frames: longer than every video
    split_keys = {k for pair in SPLIT_KEYS.values() for k in pair}
    if named.startswith("data.") and named not in split_keys and named != key:
      raise UserError(error.what, f"--config.{named}",
                      f"change --config.{named} to fit the data of --config.{key}"
                      ) from error.__cause__
    raise


def check_eval_data(config) -> None:
  """Builds the eval iterator once (what the first eval does) and closes it."""
  iterator = open_input(config, train=False)
  close = getattr(iterator, "close", None)
  if close is not None:
    close()


def check(config, workdir: str, devices: Sequence = None) -> None:
  """All start-up checks (module docstring); raises `UserError`."""
  with expected():
    experiment.validate(config)
    from vivit_jax.data.config import resolve_data_config  # pylint: disable=import-outside-toplevel
    resolve_data_config(config.data)
  with expected(fix="change the model config (see vivit_jax/models/registry.py)"):
    model = build_model(config.model)
  devices = list(jax.devices() if devices is None else devices)
  with expected("--config.mesh.shape", f"give sizes whose product is the {len(devices)} "
                "device(s), or -1 for one axis, e.g. (-1, 1, 1)"):
    resolve_mesh_shape(config.mesh.shape, len(devices))
  check_batches(config, len(devices), jax.process_count())
  check_video_shape(config, model)
  check_init_from(config, workdir)
  check_eval_data(config)
