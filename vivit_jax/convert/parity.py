"""Runs a Hugging Face model and its conversion on the same input and compares.

Output names, each a float32 numpy array:
  logits              classifier logits `(B, classes)`; for VideoMAEForPreTraining
                      the reconstruction of the hidden tubelets `(B, M, t*ph*pw*C)`.
  pooled              VivitModel's `pooler_output` `(B, D')`.
  last_hidden_state   the encoder's output tokens `(B, L, D)` (visible tokens only
                      for pretraining).
  loss                VideoMAEForPreTraining's reconstruction loss `()`.

Needs PyTorch and transformers only for the reference side, imported lazily.
"""

from typing import Dict, Optional

import jax
import jax.numpy as jnp
import numpy as np

from vivit_jax.common.constants import IMAGENET_MEAN, IMAGENET_STD
from vivit_jax.convert.conversion import Conversion
from vivit_jax.models import videomae as videomae_lib


def reference_outputs(hf_model, video: np.ndarray,
                      mask: Optional[np.ndarray] = None) -> Dict[str, np.ndarray]:
  """Outputs of a transformers model (in eval mode) for channels-last `video`."""
  import torch  # pylint: disable=g-import-not-at-top
  arch = type(hf_model).__name__
  pixel_values = torch.from_numpy(np.ascontiguousarray(video.transpose(0, 1, 4, 2, 3)))
  out = {}
  with torch.no_grad():
    if arch == "VideoMAEForPreTraining":
      bool_mask = torch.from_numpy(np.asarray(mask, bool))
      result = hf_model(pixel_values, bool_masked_pos=bool_mask)
      out["logits"], out["loss"] = result.logits, result.loss
      base = hf_model.videomae(pixel_values, bool_masked_pos=bool_mask)
    elif arch.endswith("ForVideoClassification"):
      out["logits"] = hf_model(pixel_values).logits
      base = getattr(hf_model, hf_model.base_model_prefix)(pixel_values)
    else:
      base = hf_model(pixel_values)
      if getattr(base, "pooler_output", None) is not None:
        out["pooled"] = base.pooler_output
    out["last_hidden_state"] = base.last_hidden_state
  return {k: v.detach().cpu().numpy().astype(np.float32) for k, v in out.items()}


def converted_outputs(conversion: Conversion, video: np.ndarray,
                      mask: Optional[np.ndarray] = None) -> Dict[str, np.ndarray]:
  """The same outputs (for the same architecture) from the converted model."""
  variables = {"params": conversion.params}
  arch = conversion.architecture
  if arch == "VideoMAEForPreTraining":
    mask = np.asarray(mask, bool)  # a constant under jit: it fixes the hidden count.

    def pretraining(variables, video):
      result = conversion.model.apply(variables, video, mask)
      targets = videomae_lib.reconstruction_targets(
          video, conversion.config["patch_size"], conversion.config["tubelet_size"],
          conversion.source["norm_pix_loss"], IMAGENET_MEAN,
          IMAGENET_STD)
      loss = videomae_lib.reconstruction_loss(result["predictions"], targets,
                                              result["masked_indices"])
      return {"logits": result["predictions"], "loss": loss,
              "last_hidden_state": result["encoded"]}

    out = jax.jit(pretraining)(variables, video)
  else:
    apply = jax.jit(lambda v, x: conversion.model.apply(v, x, mutable=["intermediates"]))
    result, state = apply(variables, video)
    out = {"last_hidden_state": state["intermediates"]["tokens"][0]}
    if conversion.config.get("num_classes"):
      out["logits"] = result
    elif conversion.config.get("representation_size"):
      out["pooled"] = result
  return {k: np.asarray(v, np.float32) for k, v in out.items()}


def max_abs_differences(reference: Dict[str, np.ndarray],
                        converted: Dict[str, np.ndarray]) -> Dict[str, float]:
  """Max |reference - converted| per output both sides have; shapes must agree."""
  diffs = {}
  for name in sorted(set(reference) & set(converted)):
    if reference[name].shape != converted[name].shape:
      raise ValueError(f"{name}: reference shape {reference[name].shape} vs converted "
                       f"{converted[name].shape}")
    diffs[name] = float(np.max(np.abs(reference[name] - converted[name])))
  return diffs


def random_inputs(conversion: Conversion, batch: int = 2, seed: int = 0):
  """`(video, mask)`: normal video of the checkpoint's shape and, for pretraining,
  a tube mask hiding about 3/4 of the spatial positions (else None)."""
  rng = np.random.default_rng(seed)
  dummy = conversion.dummy_inputs(batch)
  video = rng.standard_normal(dummy[0].shape).astype(np.float32)
  if len(dummy) == 1:
    return video, None
  src = conversion.source
  (h, w), (ph, pw) = src["image_size"], src["patch_size"]
  spatial, frames = (h // ph) * (w // pw), src["num_frames"] // src["tubelet_size"]
  hidden = max(1, (3 * spatial) // 4)
  mask = np.zeros((batch, frames, spatial), bool)
  for b in range(batch):
    mask[b, :, rng.permutation(spatial)[:hidden]] = True
  return video, mask.reshape(batch, frames * spatial)


def random_hf_model(architecture: str, seed: int = 0, noise: float = 0.05, **config):
  """A transformers model with random weights, in eval mode, for parity checks.

  `config` are `VivitConfig` / `VideoMAEConfig` fields. HF initialises CLS
  tokens, position tables, biases and LayerNorms to constants, which would
  hide mapping mistakes (a swapped bias, a transposed table), so every
  parameter gets N(0, noise^2) added.
  """
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  config_cls = (transformers.VivitConfig if architecture.startswith("Vivit")
                else transformers.VideoMAEConfig)
  torch.manual_seed(seed)
  model = getattr(transformers, architecture)(config_cls(**config))
  generator = torch.Generator().manual_seed(seed + 1)
  with torch.no_grad():
    for param in model.parameters():
      param.add_(noise * torch.randn(param.shape, generator=generator, dtype=param.dtype))
  return model.float().eval()


def verify(conversion: Conversion, batch: int = 2, seed: int = 0) -> Dict[str, float]:
  """Loads the source checkpoint with transformers and compares on random input."""
  import transformers  # pylint: disable=g-import-not-at-top
  hf_cls = getattr(transformers, conversion.architecture)
  hf_model = hf_cls.from_pretrained(conversion.source["path"]).float().eval()
  video, mask = random_inputs(conversion, batch, seed)
  with jax.default_matmul_precision("highest"):
    ours = converted_outputs(conversion, jnp.asarray(video), mask)
  return max_abs_differences(reference_outputs(hf_model, video, mask), ours)
