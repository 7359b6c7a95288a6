"""Start-up checks of the main job (`train/startup.py`, `experiment.check_values`):
nonsense values, batches against the devices, clips against the model's
tubelet and patch; and the training faults' guards (`train.max_skipped_steps`,
no NaN in metrics.json)."""

import json

import numpy as np
import pytest

from support import train_runs as fx
from vivit_jax.models import build_model
from vivit_jax.train import experiment, loop, startup
from vivit_jax.common.errors import UserError


def _config(**overrides):
  return fx.load_config("demo_finetune.py", dict({"init_from.kind": ""}, **overrides))


@pytest.mark.parametrize("key, value, fix", [
    ("train.num_steps", 0, ">= 1"),
    ("train.num_steps", -5, ">= 1"),
    ("train.batch_size", 0, "positive"),
    ("eval.batch_size", 0, "positive"),
    ("optimizer.learning_rate", -1e-3, "1e-3"),
    ("optimizer.learning_rate", float("nan"), "1e-3"),
    ("optimizer.end_learning_rate", -1.0, "1e-3"),
    ("optimizer.warmup_steps", -1, "0 for no warm-up"),
    ("checkpoint.keep", 0, "at least 1"),
    ("checkpoint.keep_best", -1, "0 to turn it off"),
    ("train.max_skipped_steps", -1, "non-finite steps"),
    ("train.label_smoothing", 1.0, "0.1"),
    ("train.nan_policy", "sometimes", "'stop', 'skip'"),
    ("optimizer.name", "adam", "'adamw', 'sgd'"),
    ("checkpoint.best_mode", "maximum", "'max', 'min'"),
    ("init_from.kind", "weights", "'pretrain'"),
    ("init_from.inflation", "mean", "'central_frame', 'average'"),
    ("train.reconstruction_loss", "l3", "'l2', 'l1'"),
    ("eval.every_steps", -1, "only at the end"),
    ("log.every_steps", 0, "e.g. 50"),
    ("eval.num_batches", -2, "whole split"),
])
def test_nonsense_values_are_refused_naming_key_and_fix(key, value, fix):
  with pytest.raises(UserError) as info:
    experiment.validate(_config(**{key: value}))
  assert info.value.where == f"--config.{key}"
  assert info.value.what.startswith(f"{key}=")
  assert fix in info.value.fix


def test_defaults_and_demo_values_pass():
  config = _config()
  experiment.validate(config)
  assert config.train.max_skipped_steps == 10
  experiment.validate(_config(**{"train.max_skipped_steps": None}))


def test_batch_not_splitting_over_devices_names_key_count_and_valid_values():
  config = _config(**{"train.batch_size": 6, "eval.batch_size": 6})
  startup.check_batches(config, num_devices=2)
  startup.check_batches(config, num_devices=3)
  with pytest.raises(UserError) as info:
    startup.check_batches(config, num_devices=4)
  assert info.value.line == ("error: train.batch_size=6 does not split over the 4 devices of "
                             "mesh axes ('data', 'fsdp') (--config.train.batch_size): use a "
                             "multiple of 4, e.g. 4 or 8")
  config = _config(**{"train.batch_size": 8, "eval.batch_size": 6})
  with pytest.raises(UserError, match=r"eval.batch_size=6 .* 4 devices") as info:
    startup.check_batches(config, num_devices=4)
  assert info.value.where == "--config.eval.batch_size"


def test_tensor_axis_devices_do_not_split_the_batch():
  config = _config(**{"mesh.shape": (-1, 1, 2), "train.batch_size": 2, "eval.batch_size": 2})
  startup.check_batches(config, num_devices=4)  # 2 batch devices x 2 tensor devices
  with pytest.raises(UserError, match="2 batch devices and 3 processes"):
    startup.check_batches(config, num_devices=4, process_count=3)


def test_eval_mode_checks_only_the_eval_batch():
  config = _config(**{"mode": "eval", "train.batch_size": 3, "eval.batch_size": 4})
  startup.check_batches(config, num_devices=2)


@pytest.mark.parametrize("overrides, where, fix", [
    ({"data.num_frames": 5}, "--config.data.num_frames", "multiple of 2, e.g. 4 or 6"),
    ({"data.image_size": 20}, "--config.data.image_size", "multiple of 8, e.g. 16 or 24"),
    ({"data.num_frames": 8, "model.frame_stride": 3}, "--config.data.num_frames",
     "multiple of 6, e.g. 6 or 12"),
])
def test_clip_not_divisible_by_tubelet_or_patch_is_refused(overrides, where, fix):
  base = {f"model.{k}": v for k, v in fx.TINY_ENCODER.items()}
  config = _config(**{**base, "data.image_size": 16, "data.num_frames": 4, **overrides})
  with pytest.raises(UserError) as info:
    startup.check_video_shape(config, build_model(config.model))
  assert info.value.where == where and fix in info.value.fix


def test_expected_turns_value_errors_into_user_errors_naming_their_key():
  with pytest.raises(UserError) as info:
    with startup.expected():
      raise ValueError("data.crop='x': must be one of ('random_resized',)")
  assert info.value.where == "--config.data.crop"
  assert info.value.fix == "change --config.data.crop"
  with pytest.raises(RuntimeError):
    with startup.expected():
      raise RuntimeError("not a user mistake")


def test_init_from_path_is_checked_only_on_a_fresh_run(tmp_path):
  config = _config(**{"init_from.kind": "pretrain", "init_from.path": str(tmp_path / "no")})
  with pytest.raises(UserError, match="does not exist"):
    startup.check_init_from(config, str(tmp_path / "run"))
  (tmp_path / "run" / "checkpoints" / "7").mkdir(parents=True)
  startup.check_init_from(config, str(tmp_path / "run"))  # resuming: init_from unused


def _metrics(finite: bool):
  return {"loss": np.float32(1.0 if finite else np.nan), "is_finite": np.float32(finite)}


def test_more_skipped_steps_than_the_cap_stop_naming_the_key(capsys):
  buffer = loop.MetricBuffer("skip", max_skipped_steps=2)
  for step, finite in enumerate([True, False, True, False], start=1):
    buffer.add(step, _metrics(finite))
  assert buffer.flush() == {"loss": 1.0}
  assert buffer.skipped_steps == 2
  buffer.add(5, _metrics(False))
  with pytest.raises(FloatingPointError, match=r"3 steps skipped .* by step 5, more than "
                     r"train.max_skipped_steps=2"):
    buffer.flush()
  assert capsys.readouterr().err.count("non-finite loss; update skipped") == 3


def test_no_cap_when_max_skipped_steps_is_none():
  buffer = loop.MetricBuffer("skip", max_skipped_steps=None)
  for step in range(1, 30):
    buffer.add(step, _metrics(False))
  assert buffer.flush() == {} and buffer.skipped_steps == 29


def test_non_finite_metrics_are_written_as_null_with_a_warning(tmp_path, capsys):
  path = str(tmp_path / "metrics.json")
  loop._write_json(path, {"eval/loss": float("nan"), "eval/top1": 0.5, "step": 3})
  with open(path) as f:
    assert json.load(f) == {"eval/loss": None, "eval/top1": 0.5, "step": 3}
  assert "eval/loss=nan: not finite; written as null" in capsys.readouterr().err
