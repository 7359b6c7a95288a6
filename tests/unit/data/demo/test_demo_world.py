"""The demo world (`vivit_jax.data.demo.synthetic`): balanced labels that only motion tells."""

import numpy as np
import pytest

from vivit_jax.data.demo import synthetic
from vivit_jax.train.evaluation import linear_probe


def softmax_regression_accuracy(train_x, train_y, test_x, test_y, num_classes):
  """Test accuracy of a linear softmax classifier (`linear_probe.softmax_regression`)."""
  predicted = linear_probe.softmax_regression(train_x, train_y, test_x, num_classes, steps=300,
                                              learning_rate=0.5, l2=1e-3)
  return float((predicted == test_y).mean())


def frame_features(videos, frame_index):
  """One frame per clip, 4x4 average-pooled and flattened: `(N, H/4 * W/4 * 3)`."""
  frames = videos[:, frame_index].astype(np.float32)
  n, h, w, c = frames.shape
  return frames.reshape(n, h // 4, 4, w // 4, 4, c).mean((2, 4)).reshape(n, -1)


def motion_features(videos, lag=3, shifts=(1, 2, 3, 4)):
  """How well frame t + lag matches frame t shifted by s pixels in each of the
  4 directions, relative to no shift: `(N, 4 * len(shifts))`."""
  x = videos.astype(np.float32)
  now, later = x[:, :-lag], x[:, lag:]
  still = np.abs(later - now).mean((1, 2, 3, 4))
  features = []
  for axis, sign in ((3, 1), (3, -1), (2, 1), (2, -1)):  # right, left, down, up
    for s in shifts:
      moved = np.roll(now, sign * s, axis=axis)
      features.append(np.abs(later - moved).mean((1, 2, 3, 4)) - still)
  return np.stack(features, axis=1)


@pytest.mark.parametrize("num_classes", [4, 8])
def test_labels_are_balanced_and_named(num_classes):
  videos, labels = synthetic.generate_videos(40, num_frames=4, size=32,
                                             num_classes=num_classes, seed=1)
  assert videos.shape == (40, 4, 32, 32, 3) and videos.dtype == np.uint8
  counts = np.bincount(labels, minlength=num_classes)
  assert counts.max() - counts.min() <= 1 and counts.sum() == 40
  assert len(synthetic.class_names(num_classes)) == num_classes


def test_unknown_class_count_names_the_choices():
  with pytest.raises(ValueError, match="4 \\(directions\\) or 8"):
    synthetic.generate_videos(4, num_classes=6)


@pytest.mark.parametrize("num_classes", [4, 8])
def test_class_needs_motion_single_frame_classifier_is_near_chance(num_classes):
  """A linear classifier on one frame stays at chance; the same classifier on
  frame-to-frame shift features reads the class, so the labels are learnable
  from motion alone."""
  videos, labels = synthetic.generate_videos(768, num_frames=16, size=32,
                                             num_classes=num_classes, seed=7)
  train, test = slice(0, 512), slice(512, None)
  chance = 1.0 / num_classes
  for frame in (0, 15):
    x = frame_features(videos, frame)
    accuracy = softmax_regression_accuracy(x[train], labels[train], x[test], labels[test],
                                           num_classes)
    assert accuracy < chance + 0.09, (frame, accuracy)
  x = motion_features(videos)
  if num_classes == 8:  # speed: how much the frames change at all
    x = np.concatenate([x, np.abs(np.diff(videos.astype(np.float32), axis=1)).mean(
        (1, 2, 3, 4))[:, None]], axis=1)
  accuracy = softmax_regression_accuracy(x[train], labels[train], x[test], labels[test],
                                         num_classes)
  assert accuracy > chance + 0.3, accuracy


def test_clips_are_smooth_with_light_noise():
  """Neighbouring pixels differ little (smooth backgrounds, soft edges): the
  median absolute horizontal difference stays a few grey levels."""
  videos, _ = synthetic.generate_videos(16, num_frames=4, size=32, seed=2)
  step = np.abs(np.diff(videos.astype(np.float32), axis=3))
  assert np.median(step) < 4.0
  assert videos.std() > 20  # yet not flat: the gratings and shapes carry contrast


def test_carriers_move_every_frame_and_seeds_repeat():
  first, labels = synthetic.generate_videos(8, num_frames=6, size=32, seed=5)
  again, labels_again = synthetic.generate_videos(8, num_frames=6, size=32, seed=5)
  np.testing.assert_array_equal(first, again)
  np.testing.assert_array_equal(labels, labels_again)
  change = np.abs(np.diff(first.astype(np.float32), axis=1)).mean((2, 3, 4))
  assert (change > 0.5).all()  # every clip changes between every pair of frames
