"""On-device input preprocessing inside the jitted step.

With `data.dtype="uint8"` the host pipeline stops after the resize and ships
`(B, T, H, W, 3)` uint8 clips (a quarter of the float32 bytes over PCIe and
in the batch copies); the step normalises them on the accelerator:
`(x / 255 - mean) / std` with `train.pixel_mean` / `train.pixel_std` (which
`experiment.finalize` ties to `data.mean` / `data.std`), in float32. Float
batches pass through unchanged, so a step serves both kinds of pipeline.

The flip stays on the host: it runs on the uint8 crop window before the
resize, where it costs a copy of a few hundred KB per clip.
"""

from typing import Dict, Sequence

import jax
import jax.numpy as jnp

from vivit_jax.train.defaults import IMAGENET_MEAN, IMAGENET_STD


def normalize_uint8(video: jax.Array, mean: Sequence[float], std: Sequence[float]) -> jax.Array:
  """`(..., 3)` uint8 pixels -> float32 `(x / 255 - mean) / std` (mean, std on [0, 1])."""
  scale = jnp.asarray([1.0 / (255.0 * s) for s in std], jnp.float32)
  offset = jnp.asarray([-m / s for m, s in zip(mean, std)], jnp.float32)
  return video.astype(jnp.float32) * scale + offset


def prepare_batch(batch: Dict[str, jax.Array], config) -> Dict[str, jax.Array]:
  """Normalises a uint8 `batch["video"]` on device; float videos pass unchanged."""
  video = batch.get("video")
  if video is None or video.dtype != jnp.uint8:
    return batch
  mean, std = config.train.get("pixel_mean", IMAGENET_MEAN), config.train.get(
      "pixel_std", IMAGENET_STD)
  if mean is None or std is None:  # raw pixels, on [0, 1]
    mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
  return dict(batch, video=normalize_uint8(video, mean, std))
