"""Skipped videos are counted where the user looks: the console line,
TensorBoard, metrics.json and evaluate's report.json; the counts survive a
SIGKILL + resume, and each damaged record is named once per run.

The damaged data is the tiny demo dataset plus a real TFRecord file whose
records have one byte flipped each (so their checksums fail).
"""

import glob
import json
import os
import re

import pytest
import tensorflow as tf

from support import train_runs as fx
from vivit_jax.train.evaluation import evaluate
from vivit_jax.data.sources import tfrecord as dmvr
from vivit_jax.train import loop

NUM_BAD = 3


def write_damaged_copy(pattern: str, path: str) -> str:
  """NUM_BAD records of the first file of `pattern`, each with one flipped byte."""
  source = sorted(glob.glob(pattern))[0]
  with tf.io.TFRecordWriter(path) as writer:
    for record in tf.data.TFRecordDataset(source).take(NUM_BAD):
      writer.write(record.numpy())
  index = dmvr.scan_tfrecord(path)
  with open(path, "r+b") as f:
    for offset, length in zip(index.offsets, index.lengths):
      where = int(offset + length // 2)
      f.seek(where)
      byte = f.read(1)[0]
      f.seek(where)
      f.write(bytes([byte ^ 0xFF]))
  return path


@pytest.fixture(scope="module")
def damaged(tiny_dataset, tmp_path_factory):
  directory = tmp_path_factory.mktemp("damaged")
  bad_train = write_damaged_copy(tiny_dataset["train_files"], str(directory / "bad_train.rec"))
  bad_eval = write_damaged_copy(tiny_dataset["eval_files"], str(directory / "bad_eval.rec"))
  return dict(tiny_dataset, bad_train=bad_train, bad_eval=bad_eval,
              train_files=f"{tiny_dataset['train_files']},{bad_train}",
              eval_files=f"{tiny_dataset['eval_files']},{bad_eval}")


def tensorboard_scalars(workdir: str, tag: str) -> dict:
  values = {}
  for path in glob.glob(os.path.join(workdir, "tensorboard", "events.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.tag == tag:
          values[event.step] = value.simple_value
  return values


@pytest.mark.slow
def test_skip_counts_show_everywhere_and_survive_resume(damaged, tmp_path):
  # 48 good + 3 damaged train videos, 8 clips a step: 14 steps pass them twice or more.
  overrides = fx.tiny_overrides(damaged, **{"train.num_steps": 14, "checkpoint.every_steps": 7,
                                            "eval.every_steps": 0})
  runs = fx.straight_killed_resumed("demo_finetune.py", str(tmp_path / "runs"), overrides,
                                    kill_step=7)
  straight_dir, straight, workdir = runs.straight_dir, runs.straight, runs.killed_dir
  with open(os.path.join(straight_dir, "metrics.json")) as f:
    metrics = json.load(f)
  count = metrics["data/skipped_corrupt_record"]
  assert metrics["data/skipped_corrupt"] == count and NUM_BAD < count <= 3 * NUM_BAD
  last_line = [l for l in straight.stdout.splitlines() if l.startswith("step     14/14")][0]
  assert f"skipped {count} videos (corrupt_record {count})" in last_line
  scalars = tensorboard_scalars(straight_dir, "data/skipped_corrupt_record")
  assert scalars[14] == count and min(scalars.values()) < count
  for record in range(NUM_BAD):  # Two epochs meet it; one warning names it.
    named = re.findall(rf"skipped {re.escape(damaged['bad_train'])} record {record}: record "
                       r"checksum mismatch", straight.stderr)
    assert len(named) == 1, straight.stderr[-3000:]

  with open(os.path.join(workdir, "metrics.json")) as f:
    resumed_metrics = json.load(f)
  assert resumed_metrics["data/skipped_corrupt_record"] == count  # Not restarted at 0.
  fx.assert_same_checkpoint(straight_dir, workdir, 14)

  # evaluate's report says how many listed videos it left out, and which.
  config = fx.load_config("demo_finetune.py", dict(overrides, **{"eval.num_batches": 0}))
  report = evaluate.run_evaluation(config, os.path.join(workdir, loop.MODEL_DIR),
                                   str(tmp_path / "eval"), progress=False)
  listed = damaged["num_eval"] + NUM_BAD
  assert report["num_videos"] == damaged["num_eval"]
  assert report["input"]["listed_videos"] == listed
  assert report["input"]["skipped_videos"] == NUM_BAD
  assert report["input"]["skipped_by_kind"] == {"corrupt_record": NUM_BAD}
  assert sorted(entry["name"] for entry in report["input"]["skipped"]) == [
      f"{damaged['bad_eval']} record {i}" for i in range(NUM_BAD)]
  with open(os.path.join(str(tmp_path / "eval"), evaluate.REPORT_FILE)) as f:
    assert json.load(f)["input"] == report["input"]
  assert evaluate.skipped_line(report).startswith(
      f"{NUM_BAD} of {listed} listed videos were skipped (corrupt_record {NUM_BAD}), not in "
      f"the metrics: {damaged['bad_eval']} record 0: record checksum mismatch")
