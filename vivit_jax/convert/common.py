"""Pieces every non-Hugging-Face converter shares.

  make_conversion   our config + parameter tree -> a checked `Conversion` (the
                    tree must have exactly the names and shapes the model
                    builds, else `checkpoints.ParamMismatchError`).
  read_torch_state  a `.pth` / `.pt` / `.bin` file -> `{name: float32 ndarray}`,
                    unwrapping the `model` / `module` / `state_dict` keys
                    training scripts save around the weights (needs torch,
                    imported only here).
  read_labels       a class-name file, one name per line (`checkpoints.read_labels`).
  geometry          the `source` fields that describe the checkpoint's input.
"""

import os
from typing import Any, Dict, Mapping, Optional, Sequence

import jax
import numpy as np

from vivit_jax import checkpoints
from vivit_jax.checkpoints import read_labels
from vivit_jax.convert.hf_config import UnsupportedCheckpointError
from vivit_jax.convert.conversion import Conversion
from vivit_jax.models import build_model, registry
from vivit_jax.models import embedding as emb

# Keys under which training scripts store the weights, tried in this order.
STATE_WRAPPERS = ("model", "module", "state_dict", "model_state")

__all__ = ["STATE_WRAPPERS", "UnsupportedCheckpointError", "geometry", "make_conversion",
           "read_labels", "read_torch_state"]


def geometry(num_frames: int, image_size, num_channels: int, tubelet_size: int,
             patch_size) -> Dict[str, Any]:
  """The input description `Conversion.dummy_inputs` and `export` read.

  `image_size` and `patch_size` are ints or `(H, W)` pairs; stored as lists.
  Raises ValueError when the video does not split into whole tubelets.
  """
  image, patch = list(emb.as_pair(image_size)), list(emb.as_pair(patch_size))
  emb.token_grid((num_frames, *image), patch, tubelet_size)
  return {"num_frames": int(num_frames), "image_size": image,
          "num_channels": int(num_channels), "tubelet_size": int(tubelet_size),
          "patch_size": patch}


def make_conversion(config: Dict[str, Any], params: Dict[str, Any],
                    labels: Optional[Sequence[str]], source: Dict[str, Any]) -> Conversion:
  """A `Conversion` whose params fit `build_model(config)` exactly.

  `source` must hold `path`, `architecture` and the `geometry` fields.
  """
  params = jax.tree_util.tree_map(lambda x: np.asarray(x, np.float32), params)
  num_classes = config.get("num_classes") or 0
  if labels is not None and len(labels) != num_classes:
    raise ValueError(f"{len(labels)} labels given for a head with {num_classes} classes")
  conversion = Conversion(build_model(config), dict(config), params,
                          list(labels) if labels is not None else None, dict(source))
  expected = registry.abstract_params(conversion.model,
                                      checkpoints.video_shape_of({"source": source}))
  checkpoints.check_params_match(expected, params, f"conversion of {source.get('path')}")
  return conversion


def _to_numpy(state: Mapping[str, Any]) -> Dict[str, np.ndarray]:
  import torch  # pylint: disable=g-import-not-at-top
  out = {}
  for name, value in state.items():
    if isinstance(value, torch.Tensor):
      value = value.detach().cpu()
      out[name] = (value.to(torch.float32) if value.is_floating_point() else value).numpy()
  return out


def read_torch_state(path: str, allow_pickle: bool = False) -> Dict[str, np.ndarray]:
  """Tensors of a torch checkpoint file, by name, float32 numpy.

  The file may hold the state dict itself or a dict wrapping it under one of
  STATE_WRAPPERS (optimizer state and epochs beside it are ignored). Files
  are read with `torch.load(weights_only=True)`, which refuses pickled
  Python objects (some releases store their argparse options beside the
  weights); `allow_pickle=True` unpickles them, which runs code from the
  file: only for files from a source you trust.
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path} is not a file")
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(f"reading {path} needs PyTorch (pip install torch)") from e
  try:
    state = torch.load(path, map_location="cpu", weights_only=not allow_pickle)
  except Exception as e:  # pylint: disable=broad-except
    if allow_pickle:
      raise
    raise ValueError(f"{path} holds pickled Python objects besides tensors "
                     f"({type(e).__name__}); if you trust the file, allow unpickling "
                     "(allow_pickle=True, --allow-pickle)") from e
  if not isinstance(state, Mapping):
    raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict")
  for key in STATE_WRAPPERS:
    if isinstance(state.get(key), Mapping):
      state = state[key]
      break
  tensors = _to_numpy(state)
  if not tensors:
    raise ValueError(f"{path} holds no tensors at its top level or under "
                     f"{list(STATE_WRAPPERS)}; its keys: {sorted(state)[:20]}")
  return tensors


def unused_error(unused: Sequence[str], path: str, what: str) -> ValueError:
  return ValueError(f"{len(unused)} tensor(s) of {path} ({what}) were not converted, so "
                    f"the converted model would differ: {sorted(unused)[:30]}")
