"""`Conversion`: what every converter returns, and how it is written out.

  Conversion      the converted model, its config, float32 params, class
                  names and a description of the source checkpoint.
  param_count     number of parameters of a tree.
  save_converted  a `Conversion` -> an Orbax model checkpoint.
"""

import dataclasses
from typing import Any, Dict, List, Optional, Tuple

import flax.linen as nn
import jax
import numpy as np

from vivit_jax import checkpoints
from vivit_jax.convert import hf_params


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


def save_converted(conversion: Conversion, output_dir: str, force: bool = False) -> str:
  """Writes an Orbax model checkpoint (`checkpoints.save_model_checkpoint`)."""
  return checkpoints.save_model_checkpoint(output_dir, conversion.params,
                                           conversion.checkpoint_config(), force=force)
