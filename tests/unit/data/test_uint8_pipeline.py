"""data.dtype="uint8": the host ships raw pixels and the jitted step normalises them.

Checked against the float32 pipeline on real JPEG TFRecords: the same clips
within 1/255 of a pixel after normalisation (train with crop + flip, with
colour jitter + RandAugment, and eval views), exact resumption, and the same
train-step loss from a uint8 batch as from its float32 twin.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from support import datasets as fx
from vivit_jax import data
from vivit_jax.models import build_model
from vivit_jax.train import defaults, device_preprocess, mesh as mesh_lib, partitioning, steps
from vivit_jax.train.specs import PreprocessSpec, StepSpec

MEAN, STD = (0.45, 0.5, 0.55), (0.2, 0.25, 0.3)  # not ImageNet's, so a fallback to it shows


@pytest.fixture(scope="module")
def files(tmp_path_factory):
  directory = tmp_path_factory.mktemp("dmvr_uint8")
  rng = np.random.default_rng(0)
  videos = [(rng.integers(0, 256, (20, 48, 64, 3), dtype=np.uint8), i % 3) for i in range(6)]
  return fx.write_dmvr_tfrecords(str(directory / "clips"), videos, num_shards=2)


def _config(files, **overrides):
  return dict(dict(source="tfrecord", train_files=files, eval_files=files, num_classes=3,
                   num_frames=4, stride=2, image_size=32, resize_short_side=40, mean=MEAN,
                   std=STD, probe_videos=2, flip=True), **overrides)


def _batches(config, train, count, **kwargs):
  it = data.create_iterator(config, train=train, batch_size=4, seed=5, **kwargs)
  return [next(it) for _ in range(count)], it


def _pixels_apart(uint8_video, float_video):
  """Largest difference [pixel units of 1/255] after normalising the uint8 clip."""
  normalised = np.asarray(device_preprocess.normalize_uint8(jnp.asarray(uint8_video), MEAN, STD))
  return float(np.max(np.abs(normalised - float_video) * np.asarray(STD)) * 255)


@pytest.mark.parametrize("augment", [{}, dict(color_jitter=1.0, rand_augment_layers=2)],
                         ids=["crop_flip", "jitter_randaugment"])
def test_uint8_train_clips_match_the_float_pipeline_within_one_level(files, augment):
  floats, _ = _batches(_config(files, **augment), True, 2)
  raw, _ = _batches(_config(files, dtype="uint8", **augment), True, 2)
  for f, r in zip(floats, raw):
    assert r["video"].dtype == np.uint8 and r["video"].shape == f["video"].shape
    np.testing.assert_array_equal(r["label"], f["label"])
    assert _pixels_apart(r["video"], f["video"]) <= 1.0


def test_uint8_eval_views_match_the_float_pipeline(files):
  floats, _ = _batches(_config(files, eval_spatial_views=3), False, 1)
  raw, _ = _batches(_config(files, dtype="uint8", eval_spatial_views=3), False, 1)
  assert raw[0]["video"].dtype == np.uint8
  assert _pixels_apart(raw[0]["video"], floats[0]["video"]) <= 1.0


def test_uint8_stream_resumes_exactly(files):
  config = _config(files, dtype="uint8")
  _, it = _batches(config, True, 3)
  state = json.loads(json.dumps(it.get_state()))
  expected = [next(it) for _ in range(2)]
  resumed, _ = _batches(config, True, 2, state=state)
  for want, got in zip(expected, resumed):
    np.testing.assert_array_equal(want["video"], got["video"])


def test_train_step_normalises_a_uint8_batch_on_device():
  config = defaults.default_train_config()
  config.model = dict(name="vivit", hidden_size=32, num_layers=1, num_heads=4, mlp_dim=64,
                      patch_size=8, tubelet_size=2, num_classes=3)
  config.data.mean, config.data.std = MEAN, STD
  model = build_model(config.model)
  mesh = mesh_lib.create_mesh(config.mesh)
  clip = (4, 16, 16, 3)
  raw = np.random.default_rng(1).integers(0, 256, (2,) + clip, dtype=np.uint8)
  normalised = (raw / 255.0 - np.asarray(MEAN)) / np.asarray(STD)
  sharding = partitioning.batch_sharding(mesh)
  labels = jax.device_put(np.array([0, 2], np.int32), sharding)
  losses = []
  for video in (raw, normalised.astype(np.float32)):
    state, shardings = steps.init_train_state(StepSpec.from_config(config), model, mesh, 0, clip)
    step = steps.make_train_step(StepSpec.from_config(config), model, mesh, shardings)
    evaluate = steps.make_eval_step(StepSpec.from_config(config), model, mesh, shardings)
    batch = {"video": jax.device_put(video, sharding), "label": labels}
    eval_loss = float(evaluate(state, batch)["loss"])
    _, metrics = step(state, batch)  # the zero-initialised head: loss ln 3 for any video
    losses.append((float(metrics["grad_norm"]), float(metrics["loss"]), eval_loss))
  np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)
  # With the jitter moved into the step: other gradients, the same on a rerun.
  config.data = data.default_data_config()
  config.data.dtype, config.data.color_jitter, config.data.color_jitter_prob = "uint8", 1.0, 1.0
  config.data.color_jitter_on_device = True
  jittered = []
  for _ in range(2):
    state, shardings = steps.init_train_state(StepSpec.from_config(config), model, mesh, 0, clip)
    step = steps.make_train_step(StepSpec.from_config(config), model, mesh, shardings)
    jittered.append(float(step(state, {"video": jax.device_put(raw, sharding),
                                       "label": labels})[1]["grad_norm"]))
  assert np.isfinite(jittered[0]) and jittered[0] == jittered[1]
  assert abs(jittered[0] - losses[0][0]) > 1e-6


def test_on_device_jitter_leaves_host_clips_unjittered_and_is_keyed(files):
  host, _ = _batches(_config(files, dtype="uint8", color_jitter=1.0,
                             color_jitter_on_device=True), True, 1)
  plain, _ = _batches(_config(files, dtype="uint8"), True, 1)
  np.testing.assert_array_equal(host[0]["video"], plain[0]["video"])
  config = defaults.default_train_config()
  config.data = data.resolve_data_config(_config(files, dtype="uint8", color_jitter=1.0,
                                                 color_jitter_prob=1.0,
                                                 color_jitter_on_device=True,
                                                 mean=MEAN, std=STD))
  batch = {"video": jnp.asarray(host[0]["video"])}
  spec = PreprocessSpec.from_config(config)
  jitter = lambda key: np.asarray(device_preprocess.prepare_batch(batch, spec, key)["video"])
  unjittered = np.asarray(device_preprocess.prepare_batch(batch, spec)["video"])
  first, again, other = jitter(jax.random.key(0)), jitter(jax.random.key(0)), jitter(
      jax.random.key(1))
  np.testing.assert_array_equal(first, again)
  assert not np.allclose(first, unjittered, atol=0.05) and not np.allclose(first, other)
  pixels = first * np.asarray(STD) + np.asarray(MEAN)  # back on [0, 1]
  assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5


def test_on_device_jitter_needs_uint8_output(files):
  with pytest.raises(ValueError, match="color_jitter_on_device"):
    data.resolve_data_config(_config(files, color_jitter=1.0, color_jitter_on_device=True))
