"""One eval-time frame sampling for the TF pipeline and serving (`data.eval_views`)."""

import os

import numpy as np
import pytest
import tensorflow as tf

from support import datasets as fx
from vivit_jax import data
from vivit_jax.data import sampling
from vivit_jax.data.eval_views import clip_span, view_indices
from vivit_jax.serving import video_io

LENGTHS = (5, 17, 30, 41, 64)  # shorter than a clip, barely longer, long


def _tf_eval_clips(lengths, num_frames, stride, num_views, how):
  """`sampling.eval_clips` inside a tf.data map (graph mode, as the pipeline runs it)."""
  ds = tf.data.Dataset.from_tensor_slices(np.asarray(lengths, np.int32)).map(
      lambda n: sampling.eval_clips(n, num_frames, stride, num_views, how))
  return [np.asarray(x) for x in ds.as_numpy_iterator()]


@pytest.mark.parametrize("how", ["random", "segment"])
def test_pipeline_op_equals_serving_formula_over_a_grid(how):
  rng = np.random.default_rng(0)
  for num_frames, stride, num_views in [(1, 1, 1), (4, 2, 1), (8, 2, 3), (16, 4, 4),
                                        (5, 3, 2), (32, 2, 5)]:
    lengths = sorted(set(rng.integers(1, 300, 12).tolist()) | {clip_span(num_frames, stride)})
    got = _tf_eval_clips(lengths, num_frames, stride, num_views, how)
    for n, tf_indices in zip(lengths, got):
      want = view_indices(n, num_frames, stride, num_views, how)
      assert tf_indices.shape == want.shape == (num_views, num_frames)
      np.testing.assert_array_equal(tf_indices, want, err_msg=f"n={n}")


def test_views_are_strided_spread_and_clamped():
  for n in range(1, 120, 7):
    for num_frames, stride, num_views in [(8, 2, 1), (8, 2, 3), (4, 5, 4)]:
      views = view_indices(n, num_frames, stride, num_views)
      assert views.min() >= 0 and views.max() <= n - 1
      span = clip_span(num_frames, stride)
      if n >= span:
        assert (np.diff(views, axis=1) == stride).all()
        if num_views > 1:
          assert views[0, 0] == 0 and views[-1, -1] == n - 1  # first and last window
          assert (np.diff(views[:, 0]) >= 0).all()
        else:
          assert abs(views[0, 0] - (n - 1 - views[0, -1])) <= 1  # centred
      else:
        assert views[0, -1] == n - 1  # the last frame repeats


def test_tf_pipeline_and_serving_decode_the_same_frames(tmp_path):
  entries = []
  for i, length in enumerate(LENGTHS):
    fx.write_mp4(str(tmp_path / f"v{i}.mp4"), fx.index_video(length, 48, 64))
    entries.append((f"v{i}.mp4", 0))
  list_path = fx.write_video_list(str(tmp_path / "eval.txt"), entries)
  for num_frames, stride, views in [(4, 3, 2), (8, 2, 3), (3, 7, 1)]:
    config = dict(source="video_list", train_list=list_path, eval_list=list_path,
                  video_root=str(tmp_path), num_classes=1, num_frames=num_frames,
                  stride=stride, image_size=32, resize_short_side=40, mean=(0.0,) * 3,
                  std=(1.0,) * 3, eval_temporal_views=views, eval_spatial_views=1)
    batches = list(data.create_iterator(config, train=False, batch_size=4))
    valid = np.concatenate([b["valid"] for b in batches])
    pixels = np.concatenate([fx.unnormalize(b["video"], (0,) * 3, (1,) * 3)
                             for b in batches])[valid]
    pipeline = fx.decode_frame_index(pixels).reshape(len(LENGTHS), views, num_frames)
    for i in range(len(LENGTHS)):
      path = os.path.join(str(tmp_path), f"v{i}.mp4")
      indices = view_indices(video_io.probe(path).num_frames, num_frames, stride, views)
      served = fx.decode_frame_index(video_io.read_frames(path, indices.reshape(-1)))
      np.testing.assert_array_equal(pipeline[i], served.reshape(views, num_frames),
                                    err_msg=f"video of {LENGTHS[i]} frames")
      np.testing.assert_array_equal(served.reshape(views, num_frames), indices)
