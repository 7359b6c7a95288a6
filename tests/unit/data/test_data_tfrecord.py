"""DMVR TFRecord pipeline on real JPEG TFRecords written here.

Video i has label i % 3 and 24 + 8 * (i % 3) frames; frame t's pixels encode
t (see data_fixtures), so tests read sampled frame indices back.
"""

import json
import logging

import numpy as np
import pytest
import tensorflow as tf

from support import datasets as fx
from vivit_jax import data
from vivit_jax.data import builder
from vivit_jax.data import pipeline
from vivit_jax.data import transforms
from vivit_jax.data.sources import tfrecord as dmvr
from vivit_jax.common.errors import UserError

NUM_VIDEOS = 10
HEIGHT, WIDTH = 48, 64


def video_length(label):
  return 24 + 8 * label


@pytest.fixture(scope="module")
def files(tmp_path_factory):
  directory = tmp_path_factory.mktemp("dmvr")
  videos = [(fx.index_video(video_length(i % 3), HEIGHT, WIDTH), i % 3)
            for i in range(NUM_VIDEOS)]
  return fx.write_dmvr_tfrecords(str(directory / "clips"), videos, num_shards=3)


def make_config(files, **overrides):
  return fx.tfrecord_data_config(files, **dict(dict(num_classes=3), **overrides))


def take(iterator, count):
  return [next(iterator) for _ in range(count)]


def test_train_batch_shapes_and_dtypes(files):
  it = data.create_iterator(make_config(files, one_hot_labels=True), train=True,
                            batch_size=4, seed=0)
  batch = next(it)
  assert set(batch) == {"video", "label", "one_hot_label"}
  assert batch["video"].shape == (4, 4, 32, 32, 3) and batch["video"].dtype == np.float32
  assert batch["label"].shape == (4,) and batch["label"].dtype == np.int32
  np.testing.assert_array_equal(batch["one_hot_label"].argmax(-1), batch["label"])
  assert it.num_videos == NUM_VIDEOS
  json.dumps(it.get_state())


def test_bfloat16_output(files):
  it = data.create_iterator(make_config(files, dtype="bfloat16"), train=True, batch_size=2)
  assert str(next(it)["video"].dtype) == "bfloat16"


@pytest.mark.parametrize("crop", ["random_resized", "multi_scale", "random"])
def test_frames_in_order_with_stride(files, crop):
  it = data.create_iterator(make_config(files, crop=crop, clips_per_video=2), train=True,
                            batch_size=6, seed=1)
  for batch in take(it, 3):
    pixels = fx.unnormalize(batch["video"], (0, 0, 0), (1, 1, 1))
    indices = fx.decode_frame_index(pixels)
    assert (np.diff(indices, axis=1) == 2).all(), indices
    lengths = np.array([video_length(label) for label in batch["label"]])
    assert (indices[:, 0] >= 0).all() and (indices[:, -1] < lengths).all()


def test_segment_sampling_takes_one_frame_per_segment(files):
  it = data.create_iterator(make_config(files, sampling="segment"), train=True,
                            batch_size=5, seed=2)
  for batch in take(it, 2):
    indices = fx.decode_frame_index(fx.unnormalize(batch["video"], (0,) * 3, (1,) * 3))
    segment = np.array([video_length(label) for label in batch["label"]])[:, None] / 4
    assert (indices >= np.arange(4) * segment).all()
    assert (indices < (np.arange(4) + 1) * segment).all()


def test_eval_views_layout_and_padding(files):
  config = make_config(files, eval_temporal_views=3, eval_spatial_views=3, stride=3)
  it = data.create_iterator(config, train=False, batch_size=4)
  batches = list(it)
  assert len(batches) == it.num_batches == -(-NUM_VIDEOS * 9 // 4)
  rows = {key: np.concatenate([b[key] for b in batches]) for key in batches[0]}
  assert set(rows) == {"video", "label", "video_index", "view_index", "valid"}
  valid = rows["valid"]
  assert valid.sum() == NUM_VIDEOS * 9 and not valid[NUM_VIDEOS * 9:].any()
  np.testing.assert_array_equal(rows["video_index"][valid], np.repeat(np.arange(NUM_VIDEOS), 9))
  np.testing.assert_array_equal(rows["view_index"][valid], np.tile(np.arange(9), NUM_VIDEOS))
  pixels = fx.unnormalize(rows["video"][valid], (0,) * 3, (1,) * 3).reshape(
      NUM_VIDEOS, 3, 3, 4, 32, 32, 3)
  indices = fx.decode_frame_index(pixels)  # (video, t, s, frame)
  labels = rows["label"][valid][::9]
  for video in range(NUM_VIDEOS):
    length = video_length(labels[video])
    starts = indices[video, :, 0, 0]
    assert starts[0] == 0 and indices[video, -1, 0, -1] == length - 1
    assert (np.diff(starts) > 0).all()
    assert (np.diff(indices[video], axis=-1) == 3).all()
    assert (indices[video] == indices[video, :, :1]).all()  # Same frames in every crop.
  ramp = pixels[..., 2].mean(axis=(3, 4, 5))  # Blue ramp rises left to right.
  assert (np.diff(ramp, axis=-1) > 5).all()


def test_an_iterator_per_eval_logs_no_tensorflow_warning(files):
  """A training run builds the eval iterator anew for every periodic eval: no
  tf.function retracing (nor AutoGraph) warning however many it builds."""
  records = []
  handler = logging.Handler()
  handler.emit = records.append
  logger = logging.getLogger("tensorflow")
  logger.addHandler(handler)
  try:
    for train in (False, False, False, False, False, False, True, True):
      it = data.create_iterator(make_config(files), train=train, batch_size=4)
      assert next(it)["video"].shape == (4, 4, 32, 32, 3)
      it.close()
  finally:
    logger.removeHandler(handler)
  warnings = [r.getMessage()[:120] for r in records if r.levelno >= logging.WARNING]
  assert warnings == []


def test_same_seed_same_batches_with_all_augmentations(files):
  config = make_config(files, color_jitter=1.0, rand_augment_layers=2)
  first = take(data.create_iterator(config, train=True, batch_size=4, seed=7), 2)
  again = take(data.create_iterator(config, train=True, batch_size=4, seed=7), 2)
  for a, b in zip(first, again):
    np.testing.assert_array_equal(a["video"], b["video"])
    np.testing.assert_array_equal(a["label"], b["label"])
  assert np.isfinite(first[0]["video"]).all()


def test_each_augmentation_changes_the_clip_as_documented(files):
  """Same seed, same frames and crops: flip mirrors some clips left-right and
  leaves the others, colour jitter at probability 1 changes every clip and at
  probability 0 none, RandAugment changes clips; all stay on the [0, 1] scale."""
  def batches(**overrides):
    config = make_config(files, **dict(dict(flip=False), **overrides))
    return np.concatenate([b["video"] for b in take(
        data.create_iterator(config, train=True, batch_size=4, seed=7), 2)])

  base = batches()
  flipped = batches(flip=True)
  mirrored = [np.allclose(f, b[:, :, ::-1], atol=2e-2) for f, b in zip(flipped, base)]
  same = [np.array_equal(f, b) for f, b in zip(flipped, base)]
  assert all(m != s for m, s in zip(mirrored, same)), (mirrored, same)
  assert any(mirrored) and any(same)
  ramp = flipped[..., 2].mean(axis=(1, 2))  # blue rises left to right unless mirrored
  np.testing.assert_array_equal(ramp[:, 0] > ramp[:, -1], mirrored)

  def moved(video):
    return np.abs(video - base).max(axis=(1, 2, 3, 4))

  assert (moved(batches(color_jitter=1.0, color_jitter_prob=1.0)) > 0.02).all()
  assert (moved(batches(color_jitter=1.0, color_jitter_prob=0.0)) < 1e-6).all()
  augmented = batches(rand_augment_layers=2)
  assert (moved(augmented) > 0.02).mean() >= 0.5
  assert augmented.min() >= 0.0 and augmented.max() <= 1.0 + 1e-6


def test_other_seed_gives_other_batches(files):
  config = make_config(files)
  first = take(data.create_iterator(config, train=True, batch_size=4, seed=7), 2)
  other = take(data.create_iterator(config, train=True, batch_size=4, seed=8), 2)
  assert not all(np.array_equal(a["video"], c["video"]) for a, c in zip(first, other))


@pytest.mark.parametrize("clips_per_video, batch_size", [(1, 4), (3, 4)])
def test_resume_continues_with_next_batch(files, clips_per_video, batch_size):
  config = make_config(files, clips_per_video=clips_per_video, flip=True)
  it = data.create_iterator(config, train=True, batch_size=batch_size, seed=3)
  steps = (NUM_VIDEOS * clips_per_video) // batch_size + 1  # Crosses an epoch boundary.
  take(it, steps)
  state = json.loads(json.dumps(it.get_state()))
  expected = take(it, 2)
  resumed = data.create_iterator(config, train=True, batch_size=batch_size, seed=3,
                                 state=state)
  for want, got in zip(expected, take(resumed, 2)):
    np.testing.assert_array_equal(want["video"], got["video"])
    np.testing.assert_array_equal(want["label"], got["label"])
  it.set_state(state)
  np.testing.assert_array_equal(next(it)["video"], expected[0]["video"])


def test_epochs_visit_every_video_once_in_new_orders(files):
  config = make_config(files, eval_files="unused")
  it = data.create_iterator(config, train=True, batch_size=NUM_VIDEOS, seed=0)
  epochs = take(it, 3)
  orders = [pipeline.video_order(pipeline.base_key(0, 0), e, NUM_VIDEOS).numpy()
            for e in range(3)]
  # Local ids follow the sorted shards; video i went to shard i % 3 with label i % 3.
  label_of_local_id = np.array([0] * 4 + [1] * 3 + [2] * 3)
  for epoch, order in zip(epochs, orders):
    assert sorted(order.tolist()) == list(range(NUM_VIDEOS))
    np.testing.assert_array_equal(epoch["label"], label_of_local_id[order])
  assert not np.array_equal(orders[0], orders[1])


def test_process_shards_are_disjoint_and_cover(files):
  config = data.resolve_data_config(make_config(files))
  seen, batch_counts = [], set()
  for process in range(3):
    it = data.create_iterator(config, train=False, batch_size=2, process_index=process,
                              process_count=3)
    ids = np.concatenate([b["video_index"][b["valid"]] for b in it])
    seen.append(set(ids.tolist()))
    batch_counts.add(it.num_batches)
    train_source = builder.build_source(config, True, process, 3)
    assert {train_source.describe(i) for i in range(train_source.num_videos)} == {
        builder.build_source(config, False, process, 3).describe(i) for i in
        range(train_source.num_videos)}
  assert sum(len(s) for s in seen) == NUM_VIDEOS
  assert set().union(*seen) == set(range(NUM_VIDEOS))
  assert len(batch_counts) == 1  # Every process runs the same number of eval steps.


@pytest.mark.parametrize("shape", [(48, 64), (64, 48), (31, 97), (224, 224)])
def test_crop_boxes_stay_inside_the_frame(shape):
  height, width = shape
  config = data.resolve_data_config(dict(train_files="x", image_size=24,
                                         resize_short_side=28))
  for crop in ("random_resized", "multi_scale", "random"):
    with config.unlocked():
      config.crop = crop
    for seed in range(50):
      y, x, h, w = transforms.train_crop_box(tf.constant([seed, 1], tf.int64), height,
                                             width, config).numpy()
      assert 0 <= y and 0 <= x and h >= 1 and w >= 1, (crop, seed)
      assert y + h <= height and x + w <= width, (crop, seed, (y, x, h, w))


def test_corrupt_frames_and_truncated_file_are_skipped_and_counted(tmp_path):
  good = [(fx.index_video(24, HEIGHT, WIDTH), 0) for _ in range(5)]
  frame = fx.encode_jpeg(fx.index_video(1, HEIGHT, WIDTH)[0])
  bad = {"zero frames": [], "empty frame": [frame] * 10 + [b""] + [frame] * 13,
         "truncated jpeg": [frame[:len(frame) // 2]] * 24,
         "garbage jpeg": [frame[:4] + b"\x00" * 300] * 24}
  path = str(tmp_path / "mixed.tfrecord")
  with tf.io.TFRecordWriter(path) as writer:
    for i, (frames, label) in enumerate(good[:2]):
      writer.write(dmvr.make_sequence_example([fx.encode_jpeg(f) for f in frames], [label]))
    for frames in bad.values():
      writer.write(dmvr.make_sequence_example(frames, [1]))
    for frames, label in good[2:]:
      writer.write(dmvr.make_sequence_example([fx.encode_jpeg(f) for f in frames], [label]))
  with open(path, "ab") as f:  # A record cut off mid-write.
    f.write(b"\x10\x00\x00\x00\x00\x00\x00\x00" + b"\x00" * 9)
  config = make_config(path, num_classes=2, probe_videos=16)
  it = data.create_iterator(config, train=False, batch_size=4)
  batches = list(it)
  stats = it.stats()
  assert stats["skipped_corrupt"] == len(bad) and stats["truncated_files"] == 1
  assert all("mixed.tfrecord record" in what for what in stats["skipped_examples"])
  assert sum(b["valid"].sum() for b in batches) == len(good)
  assert len(batches) == it.num_batches == 3  # Fixed from the record count.
  train = data.create_iterator(config, train=True, batch_size=3, seed=0)
  labels = np.concatenate([b["label"] for b in take(train, 10)])
  assert (labels == 0).all() and train.stats()["skipped_corrupt"] >= len(bad)


def test_label_outside_num_classes_fails_naming_the_file(files):
  with pytest.raises(ValueError, match=r"clips-00002-of-00003 record \d: label 2 is outside"):
    data.create_iterator(make_config(files, num_classes=2, probe_videos=16), train=True,
                         batch_size=2)
  # Past the probed videos the check runs on every batch.
  it = data.create_iterator(make_config(files, num_classes=2, probe_videos=1), train=False,
                            batch_size=10)
  with pytest.raises(UserError, match=r"label 2 is outside \[0, data.num_classes=2\) "
                     r"\(\S+clips-00002-of-00003 record \d\): relabel"):
    next(it)


def test_clip_longer_than_every_video_fails_at_start(files):
  with pytest.raises(ValueError, match=r"data.num_frames=16 x data.stride=4 spans 61"):
    data.create_iterator(make_config(files, num_frames=16, stride=4), train=True,
                         batch_size=2)


def test_missing_and_empty_inputs_fail_naming_the_key(tmp_path):
  with pytest.raises(FileNotFoundError, match="data.train_files"):
    data.create_iterator(make_config(str(tmp_path / "nothing-*")), train=True, batch_size=2)
  empty = str(tmp_path / "empty.tfrecord")
  tf.io.TFRecordWriter(empty).close()
  with pytest.raises(ValueError, match="no records"):
    data.create_iterator(make_config(empty), train=False, batch_size=2)


def test_multi_label_targets(tmp_path):
  path = str(tmp_path / "multi.tfrecord")
  frames = [fx.encode_jpeg(f) for f in fx.index_video(12, HEIGHT, WIDTH)]
  with tf.io.TFRecordWriter(path) as writer:
    writer.write(dmvr.make_sequence_example(frames, [2, 0]))
    writer.write(dmvr.make_sequence_example(frames, [1]))
  it = data.create_iterator(make_config(path, multi_label=True), train=False, batch_size=2)
  batch = next(it)
  np.testing.assert_array_equal(batch["multi_hot_label"], [[1, 0, 1], [0, 1, 0]])
  np.testing.assert_array_equal(batch["label"], [2, 1])


def test_comma_globs_crop_ranges_and_eval_resize_short_side(files):
  """Several comma-joined patterns read every shard; crop_area_range (1, 1) at
  the frame's own aspect crops the whole frame (the full blue ramp 32..224);
  eval_resize_short_side sets the eval resize (a smaller one shows more width)."""
  import glob  # pylint: disable=import-outside-toplevel
  shards = sorted(glob.glob(files))
  joined = f"{shards[0]}, {','.join(shards[1:])}"
  it = data.create_iterator(make_config(files, train_files=joined), train=True, batch_size=4)
  assert it.num_videos == NUM_VIDEOS

  whole = make_config(files, crop_area_range=(1.0, 1.0),
                      crop_aspect_range=(WIDTH / HEIGHT, WIDTH / HEIGHT), flip=False)
  video = next(data.create_iterator(whole, train=True, batch_size=4, seed=0))["video"]
  blue = video[..., 2].mean(axis=(1, 2)) * 255  # (B, W) columns
  np.testing.assert_allclose(blue[:, 0], 32, atol=8)
  np.testing.assert_allclose(blue[:, -1], 224, atol=8)

  def eval_ramp_span(**overrides):
    batch = next(iter(data.create_iterator(make_config(files, **overrides), train=False,
                                           batch_size=4)))
    blue = batch["video"][..., 2].mean(axis=(1, 2)) * 255
    return float(np.mean(blue[:, -1] - blue[:, 0]))

  default, wide = eval_ramp_span(), eval_ramp_span(eval_resize_short_side=32)
  # Short side 40 shows 32 / (40 * 4 / 3) of the width, short side 32 shows 32 / 42.7.
  np.testing.assert_allclose(default, 192 * 32 / (40 * 4 / 3), rtol=0.1)
  np.testing.assert_allclose(wide, 192 * 32 / (32 * 4 / 3), rtol=0.1)
