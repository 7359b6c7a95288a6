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

import json
import os
from typing import Any, Dict, List, Optional, Tuple

import flax.linen as nn

from vivit_jax.convert import common
from vivit_jax.convert import hf_config
from vivit_jax.convert import hf_params
from vivit_jax.convert import hf_state_dict
from vivit_jax.convert.conversion import Conversion

CONFIG_JSON = "config.json"


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
  return common.make_conversion(config, params, _labels(hf_cfg, num_classes), source)


def from_huggingface(path: str) -> Tuple[nn.Module, Dict[str, Any], Dict[str, Any]]:
  """`(model, config, params)` for the HF checkpoint folder at `path`.

  `config` is our model config (`model == build_model(config)`); class names
  and the source description are in `convert_huggingface(path)`.
  """
  conversion = convert_huggingface(path)
  return conversion.model, conversion.config, conversion.params
