"""Data sources and train augmentations by registry: a toy source and a toy op,
each defined here as a new user file would define it, run through the pipeline."""

import json
import sys

import numpy as np
import pytest
import tensorflow as tf

from support import datasets as fx
from vivit_jax import data
from vivit_jax.data import pipeline, rand_augment, registry, transforms
from vivit_jax.data.sources import shard_sizes

NUM_VIDEOS, NUM_FRAMES, HEIGHT, WIDTH = 6, 20, 24, 32


class InMemorySource:
  """Decoded `index_video` clips held in memory; label of video i is i % 3."""

  def __init__(self, process_index: int, process_count: int):
    self.name = "toy in-memory source"
    self.num_videos_total = NUM_VIDEOS
    self.shard_sizes = shard_sizes(NUM_VIDEOS, process_count)
    self.first_video = sum(self.shard_sizes[:process_index])
    self.num_videos = self.shard_sizes[process_index]
    ids = range(self.first_video, self.first_video + self.num_videos)
    self._labels = np.array([i % 3 for i in ids], np.int32)
    # Video i starts at frame 20 * i, so a frame index tells its video.
    self._videos = tf.constant(np.stack([fx.index_video(NUM_FRAMES + 20 * i, HEIGHT, WIDTH)
                                         [20 * i:] for i in ids]))

  def describe(self, local_id):
    return f"toy video {int(local_id)}"

  def stats(self):
    return {}

  def load(self, local_id, with_frames=True):
    label = tf.gather(tf.constant(self._labels), local_id)
    video = {"label": label, "labels": tf.cast(label, tf.int64)[None]}
    if with_frames:
      video.update(frames=tf.gather(self._videos, local_id), ok=tf.constant(True),
                   num_frames=tf.constant(NUM_FRAMES, tf.int32))
    return video

  def frame_shape(self, video):
    del video
    return HEIGHT, WIDTH

  def read_clips(self, video, indices, boxes=None):
    clips = [tf.gather(video["frames"], indices[k]) for k in range(indices.shape[0])]
    if boxes is not None:
      clips = [transforms.crop_frames(clip, box) for clip, box in zip(clips, boxes)]
    return clips, tf.constant(True)

  def probe(self, local_ids):
    return [{"label": int(self._labels[i]), "labels": [int(self._labels[i])],
             "num_frames": NUM_FRAMES} for i in local_ids]


@registry.register_source("toy_in_memory")
def toy_source(config, train, process_index, process_count):
  del config, train
  return InMemorySource(process_index, process_count)


@registry.register_op("toy_invert", stage="unit")
def toy_invert(seed, clip, config, probability=1.0):
  """Inverts every frame of the [0, 1] clip with `probability`, one draw per clip."""
  del config
  invert = tf.random.stateless_uniform([], seed) < probability
  return tf.where(invert, 1.0 - clip, clip)


def toy_config(**overrides):
  config = dict(source="toy_in_memory", num_classes=3, num_frames=4, stride=2,
                image_size=WIDTH, resize_short_side=WIDTH, crop="random", flip=False,
                mean=(0.0,) * 3, std=(1.0,) * 3, probe_videos=NUM_VIDEOS)
  config.update(overrides)
  return config


def take(iterator, count):
  return [next(iterator) for _ in range(count)]


def test_registered_source_feeds_train_and_eval_batches():
  it = data.create_iterator(toy_config(), train=False, batch_size=4)
  batches = take(it, it.num_batches)
  labels = np.concatenate([b["label"][b["valid"]] for b in batches])
  np.testing.assert_array_equal(labels, [i % 3 for i in range(NUM_VIDEOS)])
  # Eval: the centred window of every video, stride 2.
  first = fx.decode_frame_index(fx.unnormalize(batches[0]["video"], (0,) * 3, (1,) * 3))
  start = (NUM_FRAMES - 7) // 2
  np.testing.assert_array_equal(first[:, 0] - start, 20 * np.arange(4))
  train = next(data.create_iterator(toy_config(), train=True, batch_size=3, seed=1))
  assert train["video"].shape == (3, 4, WIDTH, WIDTH, 3)
  video_ids = fx.decode_frame_index(fx.unnormalize(train["video"], (0,) * 3, (1,) * 3))[:, 0]
  np.testing.assert_array_equal(train["label"], (video_ids // 20) % 3)


def test_registered_op_runs_in_the_pipeline_where_the_config_lists_it():
  plain = next(data.create_iterator(toy_config(), train=True, batch_size=3, seed=5))
  inverted = next(data.create_iterator(
      toy_config(augmentations=("flip", "toy_invert")), train=True, batch_size=3, seed=5))
  np.testing.assert_array_equal(plain["label"], inverted["label"])
  np.testing.assert_allclose(inverted["video"], 1.0 - plain["video"], atol=1e-5)


def test_registered_op_draws_from_the_element_seed_so_resume_is_exact():
  config = toy_config(augmentations=("toy_invert(probability=0.5)",), clips_per_video=2)
  it = data.create_iterator(config, train=True, batch_size=4, seed=2)
  batches = take(it, 4)
  plain = take(data.create_iterator(toy_config(augmentations=(), clips_per_video=2),
                                    train=True, batch_size=4, seed=2), 4)
  inverted = np.concatenate([
      [np.allclose(clip, 1.0 - other, atol=1e-5) for clip, other in
       zip(b["video"], p["video"])] for b, p in zip(batches, plain)])
  kept = np.concatenate([[np.allclose(clip, other, atol=1e-5) for clip, other in
                          zip(b["video"], p["video"])] for b, p in zip(batches, plain)])
  assert (inverted | kept).all() and inverted.any() and kept.any()
  state = json.loads(json.dumps(it.get_state()))
  expected = take(it, 2)
  resumed = data.create_iterator(config, train=True, batch_size=4, seed=2, state=state)
  for want, got in zip(expected, take(resumed, 2)):
    np.testing.assert_array_equal(want["video"], got["video"])


def test_default_ops_keep_their_keys_and_order():
  """With the default `augmentations`, op i gets key i of a 3-way split, as
  the hand-written pipeline did: flip, then colour jitter, then RandAugment."""
  config = data.resolve_data_config(dict(train_files="x", image_size=16,
                                         resize_short_side=16, color_jitter=1.0,
                                         rand_augment_layers=2))
  key = tf.constant([3, 4], tf.int64)
  clip = tf.constant(fx.index_video(4, 24, 20))
  got = pipeline._augment(key, clip, config, registry.resolve_ops(config.augmentations))  # pylint: disable=protected-access
  flip_key, jitter_key, rand_key = tf.unstack(tf.random.experimental.stateless_split(key, 3))
  want = transforms.resize_frames(transforms.random_flip(flip_key, clip), 16, 16) / 255.0
  want = transforms.color_jitter(jitter_key, want, 1.0, config.color_jitter_prob)
  want = rand_augment.rand_augment(rand_key, want, 2, config.rand_augment_magnitude)
  want = transforms.normalize(want, config.mean, config.std, config.dtype)
  np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_a_module_named_in_register_modules_registers_its_op(tmp_path, monkeypatch):
  (tmp_path / "my_zero_op.py").write_text(
      "from vivit_jax.data.registry import register_op\n\n"
      "@register_op('my_zero', stage='uint8')\n"
      "def my_zero(seed, clip, config):\n"
      "  return clip * 0\n")
  monkeypatch.syspath_prepend(str(tmp_path))
  config = toy_config(register_modules=("my_zero_op",), augmentations=("my_zero",))
  assert "my_zero" not in registry.op_names()
  batch = next(data.create_iterator(config, train=True, batch_size=2))
  assert "my_zero" in registry.op_names() and "my_zero_op" in sys.modules
  np.testing.assert_array_equal(batch["video"], 0.0)


@pytest.mark.parametrize("override, message", [
    ({"source": "toy_typo"}, "data.source='toy_typo': must be a registered source"),
    ({"augmentations": ("flip", "cutout")}, "'cutout' is not a registered augmentation"),
    ({"augmentations": ("flip(",)}, r"'flip\(' is not `name` or `name\(literals\)`"),
    ({"register_modules": ("no_such_module_here",)}, "cannot import 'no_such_module_here'"),
])
def test_unknown_names_fail_naming_the_key(override, message):
  with pytest.raises(ValueError, match=message):
    data.resolve_data_config(toy_config(**override))
