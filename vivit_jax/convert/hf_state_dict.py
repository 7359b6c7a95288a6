"""Reads a Hugging Face checkpoint folder's weights as numpy, under one naming.

`save_pretrained` writes `model.safetensors` (or shards listed in
`model.safetensors.index.json`), older versions `pytorch_model.bin` (or its
sharded index). Safetensors are read with the `safetensors` package into
numpy and never need torch; `.bin` files need torch, imported only then.

Tensor names are brought to one canonical form, the layout ViViT / VideoMAE
checkpoints have on the Hub and that `save_pretrained` writes:

    embeddings.{cls_token, position_embeddings, patch_embeddings.projection.*}
    encoder.layer.{i}.layernorm_before.*           (decoder.decoder_layers.{i}.*
    encoder.layer.{i}.attention.attention.{query, key, value}.*   for VideoMAE's
    encoder.layer.{i}.attention.output.dense.*     decoder, same suffixes)
    encoder.layer.{i}.layernorm_after.*
    encoder.layer.{i}.intermediate.dense.*
    encoder.layer.{i}.output.dense.*
    layernorm.*, pooler.dense.*, classifier.*, fc_norm.*, encoder_to_decoder.*,
    mask_token, decoder.norm.*, decoder.head.*

The base-model prefix (`vivit.`, `videomae.`) is dropped, transformers 5's
in-memory ViViT names (`layers.{i}.attention.q_proj`, `mlp.fc1`, ...) and
VideoMAE's separate `q_bias` / `v_bias` tensors are renamed to the above.
"""

import json
import os
import re
from typing import Dict, Iterable, List

import numpy as np

SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
TORCH_BIN = "pytorch_model.bin"
TORCH_BIN_INDEX = "pytorch_model.bin.index.json"

BASE_PREFIXES = ("vivit.", "videomae.")

# (pattern, replacement) applied in order to every name after the prefix is gone.
_RENAMES = (
    (r"^layers\.(\d+)\.", r"encoder.layer.\1."),
    (r"\.attention\.q_proj\.", ".attention.attention.query."),
    (r"\.attention\.k_proj\.", ".attention.attention.key."),
    (r"\.attention\.v_proj\.", ".attention.attention.value."),
    (r"\.attention\.o_proj\.", ".attention.output.dense."),
    (r"\.mlp\.fc1\.", ".intermediate.dense."),
    (r"\.mlp\.fc2\.", ".output.dense."),
    (r"\.attention\.attention\.q_bias$", ".attention.attention.query.bias"),
    (r"\.attention\.attention\.v_bias$", ".attention.attention.value.bias"),
)


def weight_files(folder: str) -> List[str]:
  """The weight files of a `save_pretrained` folder, safetensors first."""
  if not os.path.isdir(folder):
    raise FileNotFoundError(f"{folder} is not a directory")
  for single, index in ((SAFETENSORS, SAFETENSORS_INDEX), (TORCH_BIN, TORCH_BIN_INDEX)):
    if os.path.exists(os.path.join(folder, single)):
      return [os.path.join(folder, single)]
    if os.path.exists(os.path.join(folder, index)):
      with open(os.path.join(folder, index)) as f:
        shards = sorted(set(json.load(f)["weight_map"].values()))
      return [os.path.join(folder, shard) for shard in shards]
  raise FileNotFoundError(
      f"no weights in {folder}: expected one of {SAFETENSORS}, {SAFETENSORS_INDEX}, "
      f"{TORCH_BIN}, {TORCH_BIN_INDEX}; found {sorted(os.listdir(folder))}")


def _read_safetensors(path: str) -> Dict[str, np.ndarray]:
  from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
  return load_file(path)


def _read_torch_bin(path: str) -> Dict[str, np.ndarray]:
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(f"reading {path} needs PyTorch (pip install torch); "
                      "safetensors checkpoints do not") from e
  state = torch.load(path, map_location="cpu", weights_only=True)
  return {name: tensor.detach().to(torch.float32).numpy() if tensor.is_floating_point()
          else tensor.detach().numpy() for name, tensor in state.items()}


def read_weights(folder: str) -> Dict[str, np.ndarray]:
  """Every tensor of the checkpoint in `folder`, by its stored name."""
  state: Dict[str, np.ndarray] = {}
  for path in weight_files(folder):
    reader = _read_safetensors if path.endswith(".safetensors") else _read_torch_bin
    state.update(reader(path))
  return state


def canonical_name(name: str) -> str:
  """One stored tensor name in the canonical form of the module docstring."""
  for prefix in BASE_PREFIXES:
    if name.startswith(prefix):
      name = name[len(prefix):]
      break
  for pattern, replacement in _RENAMES:
    name = re.sub(pattern, replacement, name)
  return name


def canonical_state(state: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
  """Renames every tensor to its canonical name, as float32 numpy arrays."""
  out: Dict[str, np.ndarray] = {}
  for name, value in state.items():
    key = canonical_name(name)
    if key in out:
      raise ValueError(f"checkpoint has two tensors named {key!r} after renaming "
                       f"(one of them {name!r})")
    out[key] = np.asarray(value, np.float32)
  return out


class TensorReader:
  """Hands out canonical tensors once each and reports what is left over.

  `take(name, shape)` returns the tensor and checks its shape; `unused()`
  lists names never taken, so a converter can refuse to drop weights.
  """

  def __init__(self, state: Dict[str, np.ndarray]):
    self._state = dict(state)
    self._taken = set()

  def has(self, name: str) -> bool:
    return name in self._state

  def names(self) -> Iterable[str]:
    return self._state.keys()

  def take(self, name: str, shape=None) -> np.ndarray:
    if name not in self._state:
      raise KeyError(f"checkpoint has no tensor {name!r} (canonical name); it has "
                     f"{len(self._state)} tensors, e.g. {sorted(self._state)[:8]}")
    value = self._state[name]
    if shape is not None and tuple(value.shape) != tuple(shape):
      raise ValueError(f"checkpoint tensor {name!r} has shape {tuple(value.shape)}, "
                       f"the config implies {tuple(shape)}")
    self._taken.add(name)
    return value

  def unused(self) -> List[str]:
    return sorted(set(self._state) - self._taken)
