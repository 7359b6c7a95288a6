"""The main job trains from each data source through its config (issue 4's promise).

Each run evaluates on the whole eval split; the test checks the job counted
every eval video and that the source delivered exactly the labels written.
"""

import glob
import os

import numpy as np
import pytest

from support import datasets as data_fixtures
from support import train_runs as fx
from vivit_jax.train import inputs
from vivit_jax.train import loop


def _eval_labels(config):
  """Labels of the real (valid) rows of one eval epoch, sorted."""
  labels = []
  for batch in inputs.create_iterator(config, train=False):
    labels.extend(np.asarray(batch["label"])[np.asarray(batch["valid"])].tolist())
  return sorted(labels)


def _run(config_name, workdir, overrides, expected_labels):
  config = fx.load_config(config_name, dict(fx.tiny_overrides(
      {"train_files": "", "eval_files": ""}, **{"train.num_steps": 2, "eval.every_steps": 0,
                                                "eval.num_batches": 0}),
      **overrides))
  result = loop.run(config, workdir)
  assert result["step"] == 2
  assert np.isfinite(result["eval/loss"]) and 0.0 <= result["eval/top1"] <= 1.0
  assert result["eval/num_videos"] == len(expected_labels)
  assert _eval_labels(config) == sorted(expected_labels)
  assert os.path.isdir(os.path.join(workdir, "model", "params"))
  return result


def _record_labels(pattern):
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from vivit_jax.data.sources import tfrecord as dmvr  # pylint: disable=import-outside-toplevel
  files = sorted(glob.glob(pattern))
  return [int(dmvr.parse_sequence_example(r, with_frames=False)["labels"][0])
          for r in tf.data.TFRecordDataset(files)]


def test_main_job_reads_dmvr_tfrecords(tiny_dataset, tmp_path):
  dataset = tiny_dataset  # conftest.py: written once per test session
  labels = _record_labels(dataset["eval_files"])
  assert len(labels) == 16 and len(set(labels)) > 1
  _run("demo_tfrecord.py", str(tmp_path / "run"), {
      "data.train_files": dataset["train_files"], "data.eval_files": dataset["eval_files"]},
       labels)


@pytest.mark.slow
def test_main_job_reads_tfds(tmp_path):
  from vivit_jax.data.demo import synthetic  # pylint: disable=import-outside-toplevel
  labels = [label for _, label in synthetic.iterate_demo_videos(32, 8, 32, 4, 1)]
  _run("demo_tfds.py", str(tmp_path / "run"), {
      "data.tfds_name": "vivit_demo_motion/small", "data.tfds_data_dir": str(tmp_path / "tfds"),
      "data.image_size": 32, "data.resize_short_side": 32, "model.patch_size": 16}, labels)


def test_main_job_reads_a_list_of_video_files(tmp_path):
  entries = []
  for index in range(8):
    frames = data_fixtures.index_video(fx.FRAMES + 4, height=fx.SIZE, width=fx.SIZE)
    data_fixtures.write_mp4(str(tmp_path / f"v{index}.mp4"), frames)
    entries.append((f"v{index}.mp4", index % fx.CLASSES))
  data_fixtures.write_video_list(str(tmp_path / "list.txt"), entries[:6])
  data_fixtures.write_video_list(str(tmp_path / "eval.txt"), entries[2:])
  _run("demo_video_list.py", str(tmp_path / "run"), {
      "data.video_root": str(tmp_path), "data.train_list": str(tmp_path / "list.txt"),
      "data.eval_list": str(tmp_path / "eval.txt")}, [label for _, label in entries[2:]])
