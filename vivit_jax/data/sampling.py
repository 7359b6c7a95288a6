"""Temporal sampling: which source frames make up a clip. TF ops, stateless.

Every function maps a video length `num_source_frames` (scalar int) to frame
indices `(T,)` int32 in temporal order, clamped to the last frame when a clip
is longer than the video (the last frame repeats). Randomness comes only from
the `seed` argument (a `(2,)` int tensor for `tf.random.stateless_*`), so a
clip is a pure function of (seed, video).
"""

import tensorflow as tf

from vivit_jax.data.eval_views import clip_span, view_indices


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
  """`(num_views, T)` int32 indices of evenly spread temporal views, in order.

  The formula is `eval_views.view_indices` (NumPy, shared with serving), run
  here through `tf.numpy_function`.
  """
  def indices(n):
    return view_indices(int(n), num_frames, stride, num_views, sampling)
  out = tf.numpy_function(indices, [tf.cast(num_source_frames, tf.int32)], tf.int32,
                          stateful=False)
  out.set_shape((num_views, num_frames))
  return out
