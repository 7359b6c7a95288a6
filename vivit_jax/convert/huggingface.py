"""Hugging Face ViViT / VideoMAE checkpoints -> our Flax models.

    model, config, params = from_huggingface("path/to/save_pretrained_dir")
    logits = model.apply({"params": params}, video)          # (B, T, H, W, C)
    out = model.apply({"params": params}, video, mask)       # VideoMAEForPreTraining

`path` is a folder as `save_pretrained` writes it: `config.json` and
`model.safetensors` (or `pytorch_model.bin`, or sharded indexes of either).
Supported architectures are `hf_config.ARCHITECTURES`; see `hf_config` for
how each maps onto `ViViT` / `MaskedVideoAutoencoder`.

Video is channels-last `(B, T, H, W, C)`, where HF takes `pixel_values`
`(B, T, C, H, W)`: `video = pixel_values.transpose(0, 1, 3, 4, 2)`. Tokens
are in (t, h, w) order in both, so HF's `bool_masked_pos (B, N)` is our mask
as is. Inputs must have the checkpoint's frame count and image size
(`source["num_frames"]`, `source["image_size"]`): the ViViT position table
is learned for that grid, and HF's own models refuse other sizes too.
"""

import dataclasses
import json
import os
from typing import Any, Dict, List, Optional, Tuple

import flax.linen as nn
import jax
import numpy as np

from vivit_jax import checkpoints
from vivit_jax.convert import hf_config
from vivit_jax.convert import hf_params
from vivit_jax.convert import hf_state_dict
from vivit_jax.models import build_model

CONFIG_JSON = "config.json"


@dataclasses.dataclass(frozen=True)
class Conversion:
  """A converted checkpoint.

  Attributes:
    model: `build_model(config)`.
    config: our model config (with `name`), accepted by `build_model`.
    params: the parameter tree, float32 numpy arrays.
    labels: class names by index from HF's `id2label` (None without a head).
    source: where it came from: path, architecture, model_type,
      transformers_version, the input geometry (num_frames, image_size
      `[H, W]`, num_channels, tubelet_size, patch_size `[ph, pw]`) and, for
      VideoMAE, `norm_pix_loss`.
  """

  model: nn.Module
  config: Dict[str, Any]
  params: Dict[str, Any]
  labels: Optional[List[str]]
  source: Dict[str, Any]

  @property
  def architecture(self) -> str:
    return self.source["architecture"]

  def checkpoint_config(self) -> Dict[str, Any]:
    """The `config.json` of our model checkpoint: `{"model", "labels", "source"}`."""
    out = {"model": dict(self.config), "source": dict(self.source)}
    if self.labels is not None:
      out["labels"] = list(self.labels)
    return out

  def dummy_inputs(self, batch: int = 1) -> Tuple[np.ndarray, ...]:
    """Zero inputs of the checkpoint's shape: `(video,)` or `(video, mask)`.

    The mask hides the first half of the tokens of every example.
    """
    geometry = self.source
    h, w = geometry["image_size"]
    video = np.zeros((batch, geometry["num_frames"], h, w, geometry["num_channels"]),
                     np.float32)
    if self.config["name"] != "videomae":
      return (video,)
    n = hf_params.num_tokens(geometry)
    mask = np.zeros((batch, n), bool)
    mask[:, : n // 2] = True
    return video, mask


def param_count(params) -> int:
  return int(sum(np.size(x) for x in jax.tree_util.tree_leaves(params)))


def _labels(hf_cfg: Dict[str, Any], num_classes: int) -> Optional[List[str]]:
  if not num_classes:
    return None
  id2label = {int(k): str(v) for k, v in (hf_cfg.get("id2label") or {}).items()}
  if sorted(id2label) != list(range(num_classes)):
    return [f"LABEL_{i}" for i in range(num_classes)]
  return [id2label[i] for i in range(num_classes)]


def read_config(path: str) -> Dict[str, Any]:
  config_path = os.path.join(path, CONFIG_JSON)
  if not os.path.exists(config_path):
    raise FileNotFoundError(f"{path} is not a Hugging Face checkpoint: no {CONFIG_JSON}")
  with open(config_path) as f:
    return json.load(f)


def convert_huggingface(path: str) -> Conversion:
  """Reads and converts the checkpoint folder at `path` (see module docstring).

  Raises:
    hf_config.UnsupportedCheckpointError: unknown architecture or an option
      our models cannot reproduce (the message names it).
    ValueError: tensors with unexpected shapes, or left unconverted.
    checkpoints.ParamMismatchError: the converted tree does not fit the model.
  """
  path = os.path.abspath(path)
  hf_cfg = read_config(path)
  state = hf_state_dict.canonical_state(hf_state_dict.read_weights(path))
  arch = hf_config.detect_architecture(hf_cfg, state)
  num_classes = int(state["classifier.weight"].shape[0]) if "classifier.weight" in state else 0
  pooler = state.get("pooler.dense.weight")
  pooler_size = int(pooler.shape[0]) if pooler is not None else None
  config = hf_config.model_config(arch, hf_cfg, state, num_classes, pooler_size)
  geometry = hf_config.input_geometry(arch, hf_cfg)

  reader = hf_state_dict.TensorReader(state)
  if arch == "VideoMAEForPreTraining":
    params = hf_params.pretraining_params(reader, config, geometry)
  else:
    params = hf_params.classifier_params(reader, config, geometry)
  unused = reader.unused()
  if unused:
    raise ValueError(f"{len(unused)} tensor(s) of {path} ({arch}) were not converted, "
                     f"so the converted model would differ: {unused}")

  source = {"format": "huggingface", "path": path, "architecture": arch,
            "model_type": hf_cfg.get("model_type"),
            "transformers_version": hf_cfg.get("transformers_version"), **geometry}
  if arch in hf_config.VIDEOMAE_ARCHITECTURES:
    source["norm_pix_loss"] = bool(hf_config.with_defaults(arch, hf_cfg)["norm_pix_loss"])
  conversion = Conversion(build_model(config), config, params,
                          _labels(hf_cfg, num_classes), source)
  expected = jax.eval_shape(
      lambda: conversion.model.init(jax.random.PRNGKey(0), *conversion.dummy_inputs()))
  checkpoints.check_params_match(expected["params"], params, f"conversion of {path}")
  return conversion


def from_huggingface(path: str) -> Tuple[nn.Module, Dict[str, Any], Dict[str, Any]]:
  """`(model, config, params)` for the HF checkpoint folder at `path`.

  `config` is our model config (`model == build_model(config)`); class names
  and the source description are in `convert_huggingface(path)`.
  """
  conversion = convert_huggingface(path)
  return conversion.model, conversion.config, conversion.params


def save_converted(conversion: Conversion, output_dir: str, force: bool = False) -> str:
  """Writes an Orbax model checkpoint (`checkpoints.save_model_checkpoint`)."""
  return checkpoints.save_model_checkpoint(output_dir, conversion.params,
                                           conversion.checkpoint_config(), force=force)
