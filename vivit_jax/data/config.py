"""Input-pipeline config: every key with its default, and validation.

TensorFlow-free on purpose: a training config can read these defaults on a
machine without TensorFlow. `create_iterator` merges a user config onto
`default_data_config()` and rejects unknown keys by name.

Units: `image_size`, `resize_short_side` in pixels; `stride` in source frames;
`mean` / `std` on the [0, 1] pixel scale (pixels are divided by 255 first).
"""

from typing import Any, Mapping

import ml_collections
from ml_collections import config_dict

from vivit_jax.common.constants import IMAGENET_MEAN, IMAGENET_STD
from vivit_jax.data import registry

CROPS = ("random_resized", "multi_scale", "random")
SAMPLINGS = ("random", "segment")
DTYPES = ("float32", "bfloat16", "uint8")  # uint8: normalised on device


def default_data_config() -> ml_collections.ConfigDict:
  """All input-pipeline keys with defaults; the returned dict is locked."""
  c = ml_collections.ConfigDict()
  c.source = "tfrecord"  # A registered source: tfrecord | tfds | video_list | your own.
  # Modules imported before anything else: they register more sources or
  # augmentations (`vivit_jax.data.registry`).
  c.register_modules = ()

  # source="tfrecord": DMVR-layout tf.SequenceExample TFRecords. Glob
  # patterns; several patterns may be joined with commas.
  c.train_files = ""
  c.eval_files = ""
  # source="video_list": VideoMAE-style lists, one `path label` (or
  # `path,label`) per line; relative paths are joined to `video_root`.
  c.train_list = ""
  c.eval_list = ""
  c.video_root = ""
  # source="tfds": any TFDS video dataset, e.g. "ucf101/ucf101_1_256".
  c.tfds_name = ""
  c.tfds_data_dir = ""
  c.tfds_manual_dir = ""
  c.tfds_download = False  # Run download_and_prepare if not yet built.
  c.tfds_video_key = "video"
  c.tfds_label_key = "label"
  c.train_split = "train"
  c.eval_split = "test"

  c.num_classes = 400
  # Optional names of the classes, in label order; written into model checkpoints.
  c.class_names = config_dict.placeholder(tuple)
  c.multi_label = False  # tfrecord only: adds "multi_hot_label" (B, num_classes).
  c.one_hot_labels = False  # Adds "one_hot_label" (B, num_classes) float32.

  # Temporal sampling.
  c.num_frames = 16  # T, frames per clip.
  c.stride = 2  # Source frames between sampled frames ("random" sampling).
  c.sampling = "random"  # "random": one strided window; "segment": TSN (SSv2).
  c.clips_per_video = 1  # Train: clips drawn from each decoded video.

  # Spatial sampling and augmentation (train).
  c.image_size = 224  # Output H = W of every clip.
  c.resize_short_side = 256  # "random" crop and eval: frames resized to this.
  c.crop = "random_resized"  # One of CROPS.
  c.crop_area_range = (0.08, 1.0)  # "random_resized": crop area / frame area.
  c.crop_aspect_range = (0.75, 4.0 / 3.0)  # "random_resized": width / height.
  c.crop_scales = (1.0, 0.875, 0.75, 0.66)  # "multi_scale": of the short side.
  c.flip = True  # Horizontal flip; turn off for direction-sensitive data (SSv2).
  c.color_jitter = 0.0  # Strength s: brightness/contrast/saturation 0.4s, hue 0.1s.
  c.color_jitter_prob = 0.8
  c.color_jitter_on_device = False  # With dtype "uint8": the train step jitters (dm-pix).
  c.rand_augment_layers = 0  # RandAugment ops per clip; 0 turns it off.
  c.rand_augment_magnitude = 9  # On RandAugment's 0..10 scale.
  # Train augmentations in order, by registered name (optionally with
  # literal arguments, "name(0.5, k=2)"); each built-in runs when its key
  # above turns it on. Ops of stage "uint8" run before the resize.
  c.augmentations = ("flip", "color_jitter", "rand_augment")

  # Evaluation views: T temporal x S spatial per video, view = t * S + s.
  c.eval_temporal_views = 1
  c.eval_spatial_views = 1
  c.eval_resize_short_side = 0  # 0: use resize_short_side.

  c.mean = IMAGENET_MEAN
  c.std = IMAGENET_STD
  c.dtype = "float32"  # One of DTYPES; "uint8": raw pixels, the step normalises.

  # Train order: a fresh permutation per epoch. shuffle_buffer > 0 shuffles
  # within windows of that many consecutive videos (in a random window order)
  # for read locality; 0 permutes the whole shard.
  c.shuffle_buffer = 0
  c.num_parallel_calls = -1  # -1: tf.data.AUTOTUNE.
  c.prefetch_batches = 2  # 0: autotune.
  c.probe_videos = 16  # Videos probed at a time at start (labels, lengths, one clip) until one decodes.
  c.lock()
  return c


def _as_dict(config: Any) -> dict:
  if config is None:
    return {}
  if hasattr(config, "to_dict"):
    return config.to_dict()
  return dict(config)


def resolve_data_config(config: Any = None) -> ml_collections.ConfigDict:
  """Defaults overridden by `config` (mapping or ConfigDict), validated."""
  resolved = default_data_config()
  unknown = sorted(set(_as_dict(config)) - set(resolved.keys()))
  if unknown:
    raise ValueError(f"unknown data config key(s) {unknown}; valid keys: "
                     f"{sorted(resolved.keys())}")
  with resolved.unlocked():
    for key, value in _as_dict(config).items():
      if isinstance(value, list):
        value = tuple(value)
      resolved[key] = value
  registry.import_modules(resolved.register_modules)
  validate_data_config(resolved)
  return resolved


def _check(condition: bool, key: str, message: str, config: Mapping[str, Any]):
  if not condition:
    raise ValueError(f"data.{key}={config[key]!r}: {message}")


def validate_data_config(c: Mapping[str, Any]):
  """Raises ValueError naming the first bad key."""
  _check(c["source"] in registry.source_names(), "source",
         f"must be a registered source, one of {registry.source_names()}", c)
  for spec in c["augmentations"]:
    name = registry.parse_op_spec(spec)[0]
    _check(name in registry.op_names(), "augmentations",
           f"{name!r} is not a registered augmentation ({registry.op_names()})", c)
  _check(c["crop"] in CROPS, "crop", f"must be one of {CROPS}", c)
  _check(c["sampling"] in SAMPLINGS, "sampling", f"must be one of {SAMPLINGS}", c)
  _check(c["dtype"] in DTYPES, "dtype", f"must be one of {DTYPES}", c)
  for key in ("num_classes", "num_frames", "stride", "image_size", "resize_short_side",
              "clips_per_video", "eval_temporal_views", "eval_spatial_views"):
    _check(isinstance(c[key], int) and c[key] > 0, key, "must be a positive integer", c)
  for key in ("shuffle_buffer", "rand_augment_layers", "eval_resize_short_side",
              "probe_videos", "prefetch_batches"):
    _check(isinstance(c[key], int) and c[key] >= 0, key, "must be an integer >= 0", c)
  _check(c["num_parallel_calls"] == -1 or c["num_parallel_calls"] > 0,
         "num_parallel_calls", "must be -1 (autotune) or positive", c)
  _check(0 <= c["rand_augment_magnitude"] <= 10, "rand_augment_magnitude",
         "must lie in [0, 10]", c)
  _check(c["color_jitter"] >= 0, "color_jitter", "must be >= 0", c)
  _check(not c["color_jitter_on_device"] or c["dtype"] == "uint8", "color_jitter_on_device",
         "needs data.dtype='uint8' (the step jitters the raw pixels it normalises)", c)
  _check(c["class_names"] is None or len(c["class_names"]) == c["num_classes"],
         "class_names", "must list num_classes names", c)
  _check(0 <= c["color_jitter_prob"] <= 1, "color_jitter_prob", "must lie in [0, 1]", c)
  for key in ("mean", "std"):
    _check(len(c[key]) == 3, key, "needs 3 values (RGB, [0, 1] scale)", c)
  _check(all(s > 0 for s in c["std"]), "std", "values must be positive", c)
  low, high = c["crop_area_range"]
  _check(0 < low <= high <= 1, "crop_area_range", "needs 0 < low <= high <= 1", c)
  low, high = c["crop_aspect_range"]
  _check(0 < low <= high, "crop_aspect_range", "needs 0 < low <= high", c)
  _check(len(c["crop_scales"]) > 0 and all(0 < s <= 1 for s in c["crop_scales"]),
         "crop_scales", "needs values in (0, 1]", c)
  eval_short_side = c["eval_resize_short_side"] or c["resize_short_side"]
  _check(eval_short_side >= c["image_size"], "eval_resize_short_side" if
         c["eval_resize_short_side"] else "resize_short_side",
         f"eval frames resized to short side {eval_short_side} cannot hold "
         f"image_size={c['image_size']} crops", c)
  _check(not c["multi_label"] or c["source"] == "tfrecord", "multi_label",
         "multi-label targets are read from `clip/label/index`; needs source='tfrecord'", c)
  source_keys = {"tfrecord": ("train_files", "eval_files"),
                 "video_list": ("train_list", "eval_list"),
                 "tfds": ("tfds_name", "tfds_name")}.get(c["source"])
  if source_keys:  # Registered sources check their own keys when built.
    _check(any(c[key] for key in source_keys), source_keys[0],
           f"source={c['source']!r} needs {' / '.join(sorted(set(source_keys)))}", c)
