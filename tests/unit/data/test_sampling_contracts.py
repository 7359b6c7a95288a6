"""Temporal sampling (data/sampling.py): every documented index contract, checked exactly."""

import numpy as np
import tensorflow as tf

from vivit_jax.data import sampling
from vivit_jax.data.eval_views import view_indices


def _seeds(n):
  return [tf.constant([s, 7], tf.int32) for s in range(n)]


def test_random_clip_is_strided_and_its_start_covers_every_valid_start():
  starts = set()
  for seed in _seeds(120):
    idx = sampling.random_clip(seed, 12, num_frames=3, stride=4).numpy()
    assert idx.dtype == np.int32 and idx.shape == (3,)
    np.testing.assert_array_equal(np.diff(idx), [4, 4])
    starts.add(int(idx[0]))
  # clip span (3 - 1) * 4 + 1 = 9 frames: starts 0..3 and nothing else.
  assert starts == {0, 1, 2, 3}


def test_random_clip_longer_than_the_video_repeats_the_last_frame():
  for seed in _seeds(5):
    np.testing.assert_array_equal(sampling.random_clip(seed, 5, 4, 2).numpy(), [0, 2, 4, 4])
  np.testing.assert_array_equal(sampling.random_clip(_seeds(1)[0], 1, 3, 1).numpy(), [0, 0, 0])
  np.testing.assert_array_equal(sampling.random_clip(_seeds(1)[0], 0, 2, 1).numpy(), [0, 0])


def test_random_clip_is_a_pure_function_of_the_seed():
  a, b = _seeds(2)
  first = sampling.random_clip(a, 100, 4, 2).numpy()
  np.testing.assert_array_equal(first, sampling.random_clip(a, 100, 4, 2).numpy())
  others = {tuple(sampling.random_clip(s, 100, 4, 2).numpy()) for s in _seeds(10)}
  assert len(others) > 1


def test_segment_clip_takes_one_frame_from_each_equal_segment_and_reaches_its_ends():
  draws = np.stack([sampling.segment_clip(s, 40, 4).numpy() for s in _seeds(150)])
  assert draws.dtype == np.int32 and draws.shape == (150, 4)
  np.testing.assert_array_equal(draws.min(axis=0), [0, 10, 20, 30])
  np.testing.assert_array_equal(draws.max(axis=0), [9, 19, 29, 39])


def test_segment_clip_of_a_short_video_stays_inside_it_in_order():
  for seed in _seeds(20):
    idx = sampling.segment_clip(seed, 2, 4).numpy()
    assert idx.min() >= 0 and idx.max() <= 1
    assert np.all(np.diff(idx) >= 0)
    assert idx[0] == 0 and idx[-1] == 1  # segments [0, .5) and [1.5, 2)


def test_eval_clips_equal_the_shared_numpy_formula_with_a_static_shape():
  for sampling_kind in ("random", "segment"):
    out = sampling.eval_clips(tf.constant(30, tf.int64), 4, 3, 2, sampling_kind)
    assert out.shape == (2, 4) and out.dtype == tf.int32
    np.testing.assert_array_equal(out.numpy(), view_indices(30, 4, 3, 2, sampling_kind))
  spec = tf.function(lambda n: sampling.eval_clips(n, 4, 3, 2),
                     input_signature=[tf.TensorSpec([], tf.int32)]).get_concrete_function()
  assert spec.structured_outputs.shape == (2, 4)
