"""On-device input preprocessing inside the jitted step.

With `data.dtype="uint8"` the host pipeline stops after the resize and ships
`(B, T, H, W, 3)` uint8 clips (a quarter of the float32 bytes over PCIe and
in the batch copies); the step normalises them on the accelerator:
`(x / 255 - mean) / std` with `data.mean` / `data.std` (None: raw pixels on
[0, 1]), in float32. Float
batches pass through unchanged, so a step serves both kinds of pipeline.

With `data.color_jitter_on_device` the train step also applies the colour
jitter (`color_jitter(key, video, strength, probability)`, dm-pix: the
host pipeline's brightness / contrast / saturation / hue ranges, one draw
per clip, after any host RandAugment instead of before it), keyed by the
step's RNG, so a resumed run draws the same jitter.

The flip stays on the host: it runs on the uint8 crop window before the
resize, where it costs a copy of a few hundred KB per clip.
"""

from typing import Dict, Optional, Sequence

import jax
import jax.numpy as jnp

from vivit_jax.train.specs import PreprocessSpec


JITTER_SALT = 0x6A17  # folded into the step's key for the on-device jitter


def normalize_uint8(video: jax.Array, mean: Sequence[float], std: Sequence[float]) -> jax.Array:
  """`(..., 3)` uint8 pixels -> float32 `(x / 255 - mean) / std` (mean, std on [0, 1])."""
  scale = jnp.asarray([1.0 / (255.0 * s) for s in std], jnp.float32)
  offset = jnp.asarray([-m / s for m, s in zip(mean, std)], jnp.float32)
  return jnp.asarray(video, jnp.float32) * scale + offset


def color_jitter(key: jax.Array, video: jax.Array, strength: float,
                 probability: float) -> jax.Array:
  """`(B, T, H, W, 3)` float on [0, 1] -> jittered per clip, on [0, 1].

  Brightness +-0.4 s, contrast and saturation x(1 +- 0.4 s), hue +-0.1 s,
  each clip with `probability` (as `vivit_jax.data.transforms.color_jitter`).
  """
  import dm_pix  # pylint: disable=import-outside-toplevel  (only this path needs it)
  amount = 0.4 * strength

  def one_clip(k, clip):
    apply_key, b_key, c_key, s_key, h_key = jax.random.split(k, 5)
    uniform = lambda key, low, high: jax.random.uniform(key, (), jnp.float32, low, high)
    out = dm_pix.adjust_brightness(clip, uniform(b_key, -amount, amount))
    out = dm_pix.adjust_contrast(out, uniform(c_key, 1 - amount, 1 + amount))
    out = dm_pix.adjust_saturation(out, uniform(s_key, max(0.0, 1 - amount), 1 + amount))
    out = dm_pix.adjust_hue(out, uniform(h_key, -0.25 * amount, 0.25 * amount))
    out = jnp.clip(out, 0.0, 1.0)
    return jnp.where(jax.random.uniform(apply_key) < probability, out, clip)

  return jax.vmap(one_clip)(jax.random.split(key, video.shape[0]), video)


def prepare_batch(batch: Dict[str, jax.Array], spec: PreprocessSpec,
                  key: Optional[jax.Array] = None) -> Dict[str, jax.Array]:
  """Normalises a uint8 `batch["video"]` on device; float videos pass unchanged.

  With `key` (train steps) and `data.color_jitter_on_device`, jitters first.
  `spec`: `specs.PreprocessSpec.from_config(config)`.
  """
  video = batch.get("video")
  if video is None or video.dtype != jnp.uint8:
    return batch
  if key is not None and spec.color_jitter_on_device and spec.color_jitter > 0:
    jittered = color_jitter(key, video.astype(jnp.float32) / 255.0, float(spec.color_jitter),
                            float(spec.color_jitter_prob))
    video = jittered * 255.0  # back on the 0..255 scale normalize_uint8 takes
  mean, std = spec.mean, spec.std
  if mean is None or std is None:  # raw pixels, on [0, 1]
    mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
  return dict(batch, video=normalize_uint8(video, mean, std))
