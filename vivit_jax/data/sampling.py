"""Temporal sampling: which source frames make up a clip. TF ops, stateless.

Every function maps a video length `num_source_frames` (scalar int) to frame
indices `(T,)` int32 in temporal order, clamped to the last frame when a clip
is longer than the video (the last frame repeats). Randomness comes only from
the `seed` argument (a `(2,)` int tensor for `tf.random.stateless_*`), so a
clip is a pure function of (seed, video).
"""

import tensorflow as tf


def clip_span(num_frames: int, stride: int) -> int:
  """Source frames covered by a strided clip, first to last inclusive."""
  return (num_frames - 1) * stride + 1


def _clamp(indices, num_source_frames):
  last = tf.maximum(tf.cast(num_source_frames, tf.int32) - 1, 0)
  return tf.clip_by_value(indices, 0, last)


def random_clip(seed, num_source_frames, num_frames: int, stride: int):
  """`(T,)` indices `start + stride * t`, start uniform over valid starts."""
  num_source_frames = tf.cast(num_source_frames, tf.int32)
  max_start = tf.maximum(num_source_frames - clip_span(num_frames, stride), 0)
  start = tf.random.stateless_uniform([], seed, 0, max_start + 1, dtype=tf.int32)
  return _clamp(start + stride * tf.range(num_frames), num_source_frames)


def segment_clip(seed, num_source_frames, num_frames: int):
  """TSN sampling: one uniformly drawn frame from each of T equal segments."""
  length = tf.cast(num_source_frames, tf.float32)
  offsets = tf.random.stateless_uniform([num_frames], seed, 0.0, 1.0)
  positions = (tf.range(num_frames, dtype=tf.float32) + offsets) * length / num_frames
  return _clamp(tf.cast(tf.floor(positions), tf.int32), num_source_frames)


def eval_clips(num_source_frames, num_frames: int, stride: int, num_views: int,
               sampling: str = "random"):
  """`(num_views, T)` indices of evenly spread temporal views, in order.

  "random" sampling: strided windows whose starts spread evenly from the
  first to the last valid start (one view: the centre window). "segment":
  TSN test sampling, view k takes the frame at fraction (k + 0.5) / num_views
  of each segment.
  """
  num_source_frames = tf.cast(num_source_frames, tf.int32)
  if sampling == "segment":
    fractions = (tf.range(num_views, dtype=tf.float32) + 0.5) / num_views
    length = tf.cast(num_source_frames, tf.float32)
    positions = ((tf.range(num_frames, dtype=tf.float32)[None, :] + fractions[:, None])
                 * length / num_frames)
    return _clamp(tf.cast(tf.floor(positions), tf.int32), num_source_frames)
  max_start = tf.maximum(num_source_frames - clip_span(num_frames, stride), 0)
  if num_views == 1:
    starts = (max_start // 2)[None]
  else:
    spread = tf.cast(max_start, tf.float32) / (num_views - 1)
    starts = tf.cast(tf.round(tf.range(num_views, dtype=tf.float32) * spread), tf.int32)
  indices = starts[:, None] + stride * tf.range(num_frames)[None, :]
  return _clamp(indices, num_source_frames)
