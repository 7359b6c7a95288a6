"""Data config: TF-free defaults, unknown keys and bad values named."""

import subprocess
import sys

import pytest

from vivit_jax import data
from vivit_jax.data import config as config_lib


def test_package_and_defaults_do_not_import_tensorflow():
  code = ("import sys\n"
          "from vivit_jax import data\n"
          "c = data.default_data_config()\n"
          "data.resolve_data_config({'source': 'video_list', 'train_list': 'x.csv'})\n"
          "assert c.num_frames == 16 and c.source == 'tfrecord'\n"
          "assert 'tensorflow' not in sys.modules, 'vivit_jax.data imported TensorFlow'\n")
  subprocess.run([sys.executable, "-c", code], check=True)


def test_contract_keys_present():
  keys = set(data.default_data_config().keys())
  assert {"source", "train_files", "eval_files", "train_list", "eval_list", "tfds_name",
          "tfds_data_dir", "tfds_manual_dir", "train_split", "eval_split", "num_classes",
          "num_frames", "stride", "image_size", "resize_short_side", "eval_temporal_views",
          "eval_spatial_views", "mean", "std", "dtype", "clips_per_video",
          "shuffle_buffer"} <= keys


def test_defaults_are_locked():
  config = data.default_data_config()
  with pytest.raises(AttributeError):
    config.num_frame = 8


def test_unknown_key_is_named():
  with pytest.raises(ValueError, match="num_frame"):
    data.resolve_data_config({"num_frame": 8, "train_files": "x"})


def test_unknown_key_is_named_by_create_iterator():
  with pytest.raises(ValueError, match="colour_jitter"):
    data.create_iterator({"colour_jitter": 0.4}, train=True, batch_size=2)


@pytest.mark.parametrize("override, key", [
    ({"source": "hdf5"}, "data.source"),
    ({"num_frames": 0}, "data.num_frames"),
    ({"dtype": "float16"}, "data.dtype"),
    ({"crop_area_range": (0.5, 1.5)}, "data.crop_area_range"),
    ({"mean": (0.5, 0.5)}, "data.mean"),
    ({"image_size": 300}, "data.resize_short_side"),
    ({"multi_label": True, "source": "video_list", "train_list": "a"}, "data.multi_label"),
    ({"train_files": ""}, "data.train_files"),
])
def test_bad_values_name_their_key(override, key):
  config = {"train_files": "x"}
  config.update(override)
  with pytest.raises(ValueError, match=key.replace(".", r"\.")):
    config_lib.resolve_data_config(config)
