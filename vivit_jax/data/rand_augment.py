"""RandAugment (Cubuk et al., 2020) for clips: one op draw per clip.

`rand_augment(seed, clip, num_layers, magnitude)` applies `num_layers` ops,
each drawn uniformly from `OPS`, at `magnitude` on the 0..10 scale with a
random sign for signed ops; every frame of the `(T, H, W, C)` float32 [0, 1]
clip gets the same op and strength, so motion is preserved. The op set is
the usual one minus equalize and solarize-add.
"""

import math

import tensorflow as tf

from vivit_jax.data import transforms

OPS = ("identity", "auto_contrast", "rotate", "shear_x", "shear_y", "translate_x",
       "translate_y", "brightness", "color", "contrast", "sharpness", "posterize",
       "solarize")
_FILL = 0.5  # Grey for pixels that geometric ops move in from outside.


def _blend(degenerate, clip, factor):
  return tf.clip_by_value(degenerate + factor * (clip - degenerate), 0.0, 1.0)


def _grayscale(clip):
  return tf.image.grayscale_to_rgb(tf.image.rgb_to_grayscale(clip))


def _projective(clip, transform):
  """Warps every frame with one 3x3 map (8 coefficients, output -> input)."""
  return tf.raw_ops.ImageProjectiveTransformV3(
      images=clip, transforms=tf.cast(transform, tf.float32)[None, :],
      output_shape=tf.shape(clip)[1:3], fill_value=_FILL, interpolation="BILINEAR",
      fill_mode="CONSTANT")


def _rotate(clip, degrees):
  height = tf.cast(tf.shape(clip)[1], tf.float32)
  width = tf.cast(tf.shape(clip)[2], tf.float32)
  angle = degrees * math.pi / 180.0
  cos, sin = tf.cos(angle), tf.sin(angle)
  cx, cy = (width - 1) / 2, (height - 1) / 2
  return _projective(clip, [cos, -sin, cx - cos * cx + sin * cy,
                            sin, cos, cy - sin * cx - cos * cy, 0.0, 0.0])


def _auto_contrast(clip):
  """Stretches each channel's range over the clip to [0, 1]."""
  low = tf.reduce_min(clip, axis=[0, 1, 2])
  high = tf.reduce_max(clip, axis=[0, 1, 2])
  stretch = high > low
  scale = tf.where(stretch, 1.0 / tf.maximum(high - low, 1e-6), 1.0)
  offset = tf.where(stretch, -low * scale, 0.0)
  return transforms.per_channel_affine(clip, scale, offset)


def _sharpness(clip, factor):
  """Blends with PIL's SMOOTH blur, [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13."""
  padded = tf.pad(clip, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
  rows = padded[:, :-2] + padded[:, 1:-1] + padded[:, 2:]
  box_sum = rows[:, :, :-2] + rows[:, :, 1:-1] + rows[:, :, 2:]
  blurred = (box_sum + 4.0 * clip) / 13.0
  return _blend(blurred, clip, factor)


def _apply_op(index, clip, level, sign):
  """`level` in [0, 1] is magnitude / 10; `sign` is +-1."""
  height = tf.cast(tf.shape(clip)[1], tf.float32)
  width = tf.cast(tf.shape(clip)[2], tf.float32)
  shear = 0.3 * level * sign
  enhance = 1.0 + 0.9 * level * sign
  branches = [
      lambda: clip,
      lambda: _auto_contrast(clip),
      lambda: _rotate(clip, 30.0 * level * sign),
      lambda: _projective(clip, [1.0, shear, -shear * (height - 1) / 2, 0.0, 1.0, 0.0,
                                 0.0, 0.0]),
      lambda: _projective(clip, [1.0, 0.0, 0.0, shear, 1.0, -shear * (width - 1) / 2,
                                 0.0, 0.0]),
      lambda: _projective(clip, [1.0, 0.0, -0.3 * level * sign * width, 0.0, 1.0, 0.0,
                                 0.0, 0.0]),
      lambda: _projective(clip, [1.0, 0.0, 0.0, 0.0, 1.0, -0.3 * level * sign * height,
                                 0.0, 0.0]),
      lambda: _blend(tf.zeros_like(clip), clip, enhance),
      lambda: _blend(_grayscale(clip), clip, enhance),
      lambda: _blend(tf.reduce_mean(_grayscale(clip)) * tf.ones_like(clip), clip, enhance),
      lambda: _sharpness(clip, enhance),
      lambda: _posterize(clip, level),
      lambda: tf.where(clip >= 1.0 - level, 1.0 - clip, clip),
  ]
  return tf.switch_case(index, branches)


def _posterize(clip, level):
  bits = 8.0 - tf.round(4.0 * level)
  levels = tf.pow(2.0, bits)
  return tf.floor(clip * 255.0 / (256.0 / levels)) * (256.0 / levels) / 255.0


def rand_augment(seed, clip, num_layers: int, magnitude: float):
  """`(T, H, W, C)` float32 [0, 1] -> same shape, `num_layers` random ops."""
  level = tf.constant(magnitude / 10.0, tf.float32)
  for layer_seed in tf.unstack(tf.random.experimental.stateless_split(seed, num_layers)):
    op_seed, sign_seed = tf.unstack(tf.random.experimental.stateless_split(layer_seed, 2))
    index = tf.random.stateless_uniform([], op_seed, 0, len(OPS), dtype=tf.int32)
    sign = tf.where(tf.random.stateless_uniform([], sign_seed) < 0.5, -1.0, 1.0)
    clip = tf.ensure_shape(_apply_op(index, clip, level, sign), clip.shape)
  return clip
