"""Spatial transforms (data/transforms.py): crop-box distributions and bounds,
resizes, the spatial test views, flip, colour jitter and normalisation,
each against its documented formula."""

import ml_collections
import numpy as np
import pytest
import tensorflow as tf

from vivit_jax.data import transforms


def _seeds(n, salt=11):
  return [tf.constant([s, salt], tf.int32) for s in range(n)]


def _clip(shape=(2, 6, 8, 3), seed=0):
  return tf.constant(np.random.default_rng(seed).uniform(0, 1, shape).astype(np.float32))


def _inside(box, height, width):
  y, x, h, w = (int(v) for v in box)
  return 0 <= y and 0 <= x and h >= 1 and w >= 1 and y + h <= height and x + w <= width


def test_random_resized_box_stays_inside_and_respects_area_and_aspect():
  for seed in _seeds(30):
    box = transforms.random_resized_box(seed, 40, 60, (0.3, 0.6), (0.75, 1.33)).numpy()
    assert box.dtype == np.int32 and _inside(box, 40, 60)
    y, x, h, w = box
    if (h, w) != (40, 60):  # the fallback is the whole frame
      assert 0.25 <= h * w / 2400 <= 0.65 and 0.6 <= w / h <= 1.5


def test_multi_scale_box_sides_come_from_the_scales_within_max_distort():
  scales = (1.0, 0.5, 0.25)
  sides = set()
  for seed in _seeds(60):
    box = transforms.multi_scale_box(seed, 40, 80, scales).numpy()
    assert _inside(box, 40, 80)
    sides.add((int(box[2]), int(box[3])))
  allowed = {(40, 40), (40, 20), (20, 40), (20, 20), (20, 10), (10, 20), (10, 10)}
  assert sides <= allowed and len(sides) >= 5
  strict = {tuple(int(v) for v in transforms.multi_scale_box(s, 40, 80, scales, 0).numpy()[2:])
            for s in _seeds(30)}
  assert strict <= {(40, 40), (20, 20), (10, 10)} and len(strict) >= 2


def test_resized_random_box_is_the_crop_window_in_source_pixels_and_moves():
  positions = set()
  for seed in _seeds(40):
    box = transforms.resized_random_box(seed, 50, 100, 25, 20).numpy()
    np.testing.assert_array_equal(box[2:], [40, 40])  # 20 px at scale 50 / 25
    assert _inside(box, 50, 100)
    positions.add((int(box[0]), int(box[1])))
  ys, xs = zip(*positions)
  assert max(ys) <= 10 and max(xs) <= 60 and len(set(ys)) > 3 and len(set(xs)) > 10
  capped = transforms.resized_random_box(_seeds(1)[0], 30, 30, 10, 20).numpy()
  np.testing.assert_array_equal(capped, [0, 0, 30, 30])


def test_random_position_reaches_both_edges():
  ys, xs = set(), set()
  for i, seed in enumerate(_seeds(80)):
    y, x, h, w = transforms._random_position(  # pylint: disable=protected-access
        seed, tf.constant([i, 5]), 6, 9, 4, 5).numpy()
    assert (h, w) == (4, 5)
    ys.add(int(y))
    xs.add(int(x))
  assert ys == {0, 1, 2} and xs == {0, 1, 2, 3, 4}


def test_train_crop_box_dispatches_on_the_crop_key():
  config = ml_collections.ConfigDict(dict(
      crop="random_resized", crop_area_range=(0.5, 0.5), crop_aspect_range=(1.0, 1.0),
      crop_scales=(0.5,), resize_short_side=20, image_size=10))
  seed = _seeds(1)[0]
  np.testing.assert_array_equal(transforms.train_crop_box(seed, 40, 40, config),
                                transforms.random_resized_box(seed, 40, 40, (0.5, 0.5),
                                                              (1.0, 1.0)))
  config.crop = "multi_scale"
  np.testing.assert_array_equal(transforms.train_crop_box(seed, 40, 40, config).numpy()[2:],
                                [20, 20])
  config.crop = "random"
  np.testing.assert_array_equal(transforms.train_crop_box(seed, 40, 40, config).numpy()[2:],
                                [20, 20])


def test_crop_and_resize_frames():
  clip = _clip()
  np.testing.assert_array_equal(transforms.crop_frames(clip, tf.constant([1, 2, 3, 4])),
                                clip.numpy()[:, 1:4, 2:6])
  resized = transforms.resize_frames(clip * 255, 12, 16)
  assert resized.shape == (2, 12, 16, 3) and resized.dtype == tf.float32
  np.testing.assert_allclose(resized, tf.image.resize(clip * 255, [12, 16]), rtol=1e-6)


def test_short_side_resize_keeps_the_aspect_and_never_undershoots():
  assert [int(v) for v in transforms.short_side_size(100, 300, 50)] == [50, 150]
  assert [int(v) for v in transforms.short_side_size(301, 100, 50)] == [150, 50]
  assert [int(v) for v in transforms.short_side_size(99, 100, 50)] == [50, 51]
  out = transforms.resize_short_side(_clip((1, 10, 20, 3)), 5)
  assert out.shape == (1, 5, 10, 3) and out.dtype == tf.float32


@pytest.mark.parametrize("height,width", [(8, 14), (14, 8)])
def test_spatial_views_spread_along_the_long_side_and_centre_the_short_one(height, width):
  frames = tf.constant(np.arange(height * width, dtype=np.float32).reshape(1, height, width, 1))
  views = transforms.spatial_views(frames, 3, 6).numpy()
  assert views.shape == (3, 1, 6, 6, 1)
  long_max = max(height, width) - 6
  short_off = (min(height, width) - 6) // 2
  for view, start in zip(views, (0, long_max // 2, long_max)):
    y, x = (short_off, start) if width >= height else (start, short_off)
    np.testing.assert_array_equal(view[0, :, :, 0], frames.numpy()[0, y:y + 6, x:x + 6, 0])
  centre = transforms.spatial_views(frames, 1, 6).numpy()[0]
  y, x = (height - 6) // 2, (width - 6) // 2
  np.testing.assert_array_equal(centre[0, :, :, 0], frames.numpy()[0, y:y + 6, x:x + 6, 0])


def test_random_flip_mirrors_every_frame_or_none_about_half_the_time():
  clip = _clip()
  flips = 0
  for seed in _seeds(40):
    out = transforms.random_flip(seed, clip).numpy()
    if np.array_equal(out, clip.numpy()[:, :, ::-1]):
      flips += 1
    else:
      np.testing.assert_array_equal(out, clip.numpy())
  assert 10 <= flips <= 30


def test_color_jitter_applies_with_its_probability_and_stays_in_unit_range():
  clip = _clip(seed=3)
  changed = 0
  for seed in _seeds(30):
    out = transforms.color_jitter(seed, clip, 1.0, 0.5).numpy()
    assert out.min() >= 0.0 and out.max() <= 1.0
    changed += not np.array_equal(out, clip.numpy())
  assert 7 <= changed <= 23
  for seed in _seeds(5):
    np.testing.assert_array_equal(transforms.color_jitter(seed, clip, 1.0, 0.0), clip)
    np.testing.assert_allclose(transforms.color_jitter(seed, clip, 0.0, 1.0).numpy(),
                               clip.numpy(), atol=1e-5)  # strength 0: identity factors


def test_color_jitter_strength_bounds_the_brightness_shift():
  grey = tf.fill([1, 4, 4, 3], 0.5)
  shifts = [float(np.mean(transforms.color_jitter(s, grey, 0.25, 1.0).numpy()) - 0.5)
            for s in _seeds(30)]
  assert max(abs(v) for v in shifts) <= 0.1 + 1e-4
  assert max(abs(v) for v in shifts) > 0.05


def test_normalize_maps_pixels_to_standard_scores_in_the_asked_dtype():
  clip = _clip() * 255
  mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.5)
  out = transforms.normalize(clip, mean, std, "float32", 255.0)
  ref = (clip.numpy() / 255 - np.asarray(mean)) / np.asarray(std)
  assert out.dtype == tf.float32
  np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
  half = transforms.normalize(clip, mean, std, "bfloat16", 255.0)
  assert half.dtype == tf.bfloat16
  np.testing.assert_allclose(tf.cast(half, tf.float32), ref, atol=0.05)
  affine = transforms.per_channel_affine(tf.ones([2, 3, 3]), tf.constant([1.0, 2.0, 3.0]),
                                         tf.constant([0.0, -1.0, 1.0]))
  np.testing.assert_array_equal(affine.numpy()[1, 2], [1.0, 1.0, 4.0])


def test_color_jitter_hue_shift_is_symmetric_within_a_quarter_of_the_amount():
  # One pixel: contrast (around the image mean) and brightness leave its hue alone,
  # saturation keeps hue, so the hue change is the drawn hue delta.
  pixel = tf.constant([[[[0.55, 0.45, 0.5]]]])
  hue = lambda x: tf.image.rgb_to_hsv(x).numpy()[0, 0, 0, 0]
  deltas = np.array([(hue(transforms.color_jitter(s, pixel, 1.0, 1.0)) - hue(pixel) + 0.5)
                     % 1.0 - 0.5 for s in _seeds(40, salt=3)])
  assert np.abs(deltas).max() <= 0.1 + 1e-3  # 0.25 * 0.4 * strength
  assert deltas.min() < -0.03 and deltas.max() > 0.03
