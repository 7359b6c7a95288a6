"""The main job trains from each data source through its config (issue 4's promise)."""

import os

import numpy as np
import pytest

import data_fixtures
import train_main_fixtures as fx
from vivit_jax.train import loop


def _run(config_name, workdir, overrides):
  config = fx.load_config(config_name, dict(fx.tiny_overrides(
      {"train_files": "", "eval_files": ""}, **{"train.num_steps": 2, "eval.every_steps": 0}),
      **overrides))
  result = loop.run(config, workdir)
  assert result["step"] == 2
  assert np.isfinite(result["eval/loss"]) and 0.0 <= result["eval/top1"] <= 1.0
  assert os.path.isdir(os.path.join(workdir, "model", "params"))
  return result


def test_main_job_reads_dmvr_tfrecords(tmp_path):
  dataset = fx.write_tiny_dataset(str(tmp_path / "data"))
  _run("demo_tfrecord.py", str(tmp_path / "run"), {
      "data.train_files": dataset["train_files"], "data.eval_files": dataset["eval_files"]})


@pytest.mark.slow
def test_main_job_reads_tfds(tmp_path):
  _run("demo_tfds.py", str(tmp_path / "run"), {
      "data.tfds_name": "vivit_demo_motion/small", "data.tfds_data_dir": str(tmp_path / "tfds"),
      "data.image_size": 32, "data.resize_short_side": 32, "model.patch_size": 16})


def test_main_job_reads_a_list_of_video_files(tmp_path):
  entries = []
  for index in range(8):
    frames = data_fixtures.index_video(fx.FRAMES + 4, height=fx.SIZE, width=fx.SIZE)
    data_fixtures.write_mp4(str(tmp_path / f"v{index}.mp4"), frames)
    entries.append((f"v{index}.mp4", index % fx.CLASSES))
  data_fixtures.write_video_list(str(tmp_path / "list.txt"), entries)
  _run("demo_video_list.py", str(tmp_path / "run"), {
      "data.video_root": str(tmp_path), "data.train_list": str(tmp_path / "list.txt"),
      "data.eval_list": str(tmp_path / "list.txt")})
