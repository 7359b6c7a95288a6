"""Spatial transforms of a clip; one draw per clip, applied to every frame.

Clips are `(T, H, W, C)` tensors: uint8 straight from the decoder, float32 on
the 0..255 scale after resizing, [0, 1] inside the colour augmentations. Crop boxes are `(y, x, h, w)` int32
in source-frame pixels, computed before decoding so the JPEG decoder can
decode just that window (`tf.io.decode_and_crop_jpeg`). `seed` is a `(2,)`
stateless seed.
"""

from typing import Sequence

import tensorflow as tf


def _shape_hw(height, width):
  return tf.cast(height, tf.int32), tf.cast(width, tf.int32)


def random_resized_box(seed, height, width, area_range: Sequence[float],
                       aspect_range: Sequence[float]):
  """Inception-style crop: random area fraction and aspect ratio (w / h)."""
  height, width = _shape_hw(height, width)
  begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
      tf.stack([height, width, 3]), bounding_boxes=tf.zeros([1, 0, 4]), seed=seed,
      min_object_covered=0.0, aspect_ratio_range=tuple(aspect_range),
      area_range=tuple(area_range), max_attempts=10, use_image_if_no_bounding_boxes=True)
  return tf.stack([begin[0], begin[1], size[0], size[1]])


def multi_scale_box(seed, height, width, scales: Sequence[float], max_distort: int = 1):
  """TSN multi-scale crop: sides drawn from `scales` x short side, with the two
  scale indices at most `max_distort` apart; position uniform."""
  height, width = _shape_hw(height, width)
  pairs = [(i, j) for i in range(len(scales)) for j in range(len(scales))
           if abs(i - j) <= max_distort]
  scales_tensor = tf.constant(scales, tf.float32)
  pair_seed, y_seed, x_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
  pair = tf.gather(tf.constant(pairs, tf.int32), tf.random.stateless_uniform(
      [], pair_seed, 0, len(pairs), dtype=tf.int32))
  short_side = tf.cast(tf.minimum(height, width), tf.float32)
  crop_h = tf.cast(short_side * tf.gather(scales_tensor, pair[0]), tf.int32)
  crop_w = tf.cast(short_side * tf.gather(scales_tensor, pair[1]), tf.int32)
  return _random_position(y_seed, x_seed, height, width, crop_h, crop_w)


def resized_random_box(seed, height, width, resize_short_side: int, crop_size: int):
  """The window a `crop_size` random crop takes after resizing the short side
  to `resize_short_side` (DMVR / scenic training crop), in source pixels."""
  height, width = _shape_hw(height, width)
  y_seed, x_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
  scale = tf.cast(tf.minimum(height, width), tf.float32) / resize_short_side
  side = tf.cast(tf.round(crop_size * scale), tf.int32)
  return _random_position(y_seed, x_seed, height, width, tf.minimum(side, height),
                          tf.minimum(side, width))


def _random_position(y_seed, x_seed, height, width, crop_h, crop_w):
  crop_h = tf.clip_by_value(crop_h, 1, height)
  crop_w = tf.clip_by_value(crop_w, 1, width)
  y = tf.random.stateless_uniform([], y_seed, 0, height - crop_h + 1, dtype=tf.int32)
  x = tf.random.stateless_uniform([], x_seed, 0, width - crop_w + 1, dtype=tf.int32)
  return tf.stack([y, x, crop_h, crop_w])


def train_crop_box(seed, height, width, config):
  """Dispatches on `config.crop`; returns `(y, x, h, w)` int32."""
  if config.crop == "random_resized":
    return random_resized_box(seed, height, width, config.crop_area_range,
                              config.crop_aspect_range)
  if config.crop == "multi_scale":
    return multi_scale_box(seed, height, width, config.crop_scales)
  return resized_random_box(seed, height, width, config.resize_short_side,
                            config.image_size)


def crop_frames(frames, box):
  """`(T, H, W, C)` -> `(T, h, w, C)` window of an already decoded clip."""
  return frames[:, box[0]:box[0] + box[2], box[1]:box[1] + box[3], :]


def resize_frames(frames, height: int, width: int):
  """Bilinear resize to `(T, height, width, C)` float32, pixel scale kept (0..255)."""
  return tf.image.resize(frames, [height, width], method="bilinear")


def short_side_size(height, width, short_side: int):
  """`(new_h, new_w)` int32 with the short side `short_side`, aspect kept."""
  height, width = _shape_hw(height, width)
  scale = short_side / tf.cast(tf.minimum(height, width), tf.float32)
  new_h = tf.maximum(tf.cast(tf.round(tf.cast(height, tf.float32) * scale), tf.int32),
                     short_side)
  new_w = tf.maximum(tf.cast(tf.round(tf.cast(width, tf.float32) * scale), tf.int32),
                     short_side)
  return new_h, new_w


def resize_short_side(frames, short_side: int):
  """`(T, H, W, C)` -> float32 frames (0..255) with the short side resized."""
  new_h, new_w = short_side_size(tf.shape(frames)[1], tf.shape(frames)[2], short_side)
  return tf.image.resize(frames, tf.stack([new_h, new_w]), method="bilinear")


def spatial_views(frames, num_views: int, crop_size: int):
  """`(S, T, crop, crop, C)` square crops spread along the long side.

  One view: the centre crop. Three: start, centre, end of the long side
  (left/centre/right for landscape frames), as in ViViT and VideoMAE testing.
  """
  height, width = tf.shape(frames)[1], tf.shape(frames)[2]
  max_y, max_x = height - crop_size, width - crop_size
  views = []
  for view in range(num_views):
    fraction = 0.5 if num_views == 1 else view / (num_views - 1)
    along_width = max_x >= max_y
    y = tf.where(along_width, max_y // 2,
                 tf.cast(tf.round(fraction * tf.cast(max_y, tf.float32)), tf.int32))
    x = tf.where(along_width,
                 tf.cast(tf.round(fraction * tf.cast(max_x, tf.float32)), tf.int32),
                 max_x // 2)
    views.append(frames[:, y:y + crop_size, x:x + crop_size, :])
  return tf.ensure_shape(tf.stack(views), [num_views, None, crop_size, crop_size, None])


def random_flip(seed, clip):
  """Mirrors every frame left-right with probability 1/2."""
  flip = tf.random.stateless_uniform([], seed) < 0.5
  return tf.cond(flip, lambda: tf.reverse(clip, axis=[2]), lambda: clip)


def color_jitter(seed, clip, strength: float, probability: float):
  """Brightness, contrast, saturation (each +-0.4 s) and hue (+-0.1 s) with
  one random factor each per clip, applied with `probability`; [0, 1] in/out."""
  apply_seed, b_seed, c_seed, s_seed, h_seed = tf.unstack(
      tf.random.experimental.stateless_split(seed, 5))
  amount = 0.4 * strength

  def jitter():
    out = tf.image.adjust_brightness(
        clip, tf.random.stateless_uniform([], b_seed, -amount, amount))
    out = tf.image.adjust_contrast(
        out, tf.random.stateless_uniform([], c_seed, 1 - amount, 1 + amount))
    out = tf.image.adjust_saturation(
        out, tf.random.stateless_uniform([], s_seed, max(0.0, 1 - amount), 1 + amount))
    out = tf.image.adjust_hue(
        out, tf.random.stateless_uniform([], h_seed, -0.25 * amount, 0.25 * amount))
    return tf.clip_by_value(out, 0.0, 1.0)

  apply = tf.random.stateless_uniform([], apply_seed) < probability
  return tf.cond(apply, jitter, lambda: clip)


def per_channel_affine(clip, scale, offset):
  """`clip * scale + offset` with `(C,)` scale and offset, for `(..., W, C)` clips.

  Broadcasting over a last axis of 3 is slow in TF's CPU kernels; over whole
  rows (W * C values) it is about 5x faster.
  """
  width, channels = tf.shape(clip)[-2], tf.shape(clip)[-1]
  rows = tf.reshape(clip, [-1, width * channels])
  rows = rows * tf.tile(scale, [width]) + tf.tile(offset, [width])
  return tf.reshape(rows, tf.shape(clip))


def normalize(clip, mean: Sequence[float], std: Sequence[float], dtype: str,
              pixel_max: float = 1.0):
  """Pixels on the [0, pixel_max] scale -> `(x / pixel_max - mean) / std` in
  `dtype` ("float32" | "bfloat16"), `mean` and `std` on the [0, 1] scale."""
  scale = tf.constant([1.0 / (pixel_max * s) for s in std], tf.float32)
  offset = tf.constant([-m / s for m, s in zip(mean, std)], tf.float32)
  clip = per_channel_affine(clip, scale, offset)
  return tf.cast(clip, tf.bfloat16 if dtype == "bfloat16" else tf.float32)
