"""`python -m vivit_jax.data.make_tfrecords`: mp4 + list -> DMVR TFRecords, resumable."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from support import datasets as fx
from vivit_jax import data
from vivit_jax.data import make_tfrecords


@pytest.fixture()
def video_list(tmp_path):
  entries = []
  for i, length in enumerate((20, 26, 31, 24)):
    path = fx.write_mp4(str(tmp_path / f"v{i}.mp4"), fx.index_video(length, 48, 64))
    entries.append((os.path.basename(path), i % 2))
  bad = fx.write_corrupt_files(str(tmp_path), str(tmp_path / "v0.mp4"))
  entries.insert(2, (os.path.basename(bad["garbage"]), 1))
  entries.append(("not_there.mp4", 0))
  return fx.write_video_list(str(tmp_path / "list.txt"), entries), str(tmp_path)


def test_convert_writes_readable_shards_and_resumes(video_list, tmp_path):
  list_path, root = video_list
  out = str(tmp_path / "records")
  summary = make_tfrecords.write_tfrecords(list_path, out, name="val", num_shards=2,
                                          short_side=32, video_root=root)
  assert summary["converted"] == 4 and summary["frames"] == 20 + 26 + 31 + 24
  assert sorted(os.path.basename(p) for p in summary["skipped"]) == ["garbage.mp4",
                                                                    "not_there.mp4"]
  assert summary["skipped_by_reason"] == {"InvalidDataError": 1, "FileNotFoundError": 1}
  config = dict(source="tfrecord", eval_files=summary["pattern"], num_classes=2,
                num_frames=4, stride=5, image_size=32, resize_short_side=32,
                mean=(0.0,) * 3, std=(1.0,) * 3)
  it = data.create_iterator(config, train=False, batch_size=4)
  batch = next(it)
  assert batch["valid"].all() and it.num_videos == 4
  np.testing.assert_array_equal(batch["label"], [0, 1, 0, 1])
  indices = fx.decode_frame_index(fx.unnormalize(batch["video"], (0,) * 3, (1,) * 3))
  starts = np.array([(n - 16) // 2 for n in (20, 26, 31, 24)])
  np.testing.assert_array_equal(indices, starts[:, None] + 5 * np.arange(4))

  first = make_tfrecords.shard_path(out, "val", 0, 2)
  mtime = os.path.getmtime(first)
  os.remove(make_tfrecords.shard_path(out, "val", 1, 2))
  again = make_tfrecords.write_tfrecords(list_path, out, name="val", num_shards=2,
                                        short_side=32, video_root=root)
  assert again["shards_written"] == 1 and again["shards_already_complete"] == 1
  assert again["converted"] == 4 and os.path.getmtime(first) == mtime


def test_command_line_with_worker_processes_shows_progress(video_list, tmp_path, capsys):
  list_path, root = video_list
  out = str(tmp_path / "cli")
  make_tfrecords.main(["--list", list_path, "--video_root", root, "--output_dir", out,
                       "--num_shards", "2", "--short_side", "40", "--workers", "2"])
  captured = capsys.readouterr()
  printed = captured.out
  # tqdm's last refresh: every listed video counted, converted or skipped.
  assert "6/6" in captured.err.replace(" ", "") and "video" in captured.err
  assert "converted 4 of 6 videos" in printed and "skipped 2 videos" in printed
  assert "not_there.mp4: FileNotFoundError" in printed
  with open(os.path.join(out, "train.summary.json")) as f:
    assert json.load(f)["shards_written"] == 2
  it = data.create_iterator(dict(source="tfrecord", train_files=os.path.join(out, "*.tfrecord"),
                                 num_classes=2, num_frames=4, image_size=32,
                                 resize_short_side=40), train=True, batch_size=2)
  assert next(it)["video"].shape == (2, 4, 32, 32, 3)


def test_old_command_name_still_runs_and_names_the_new_one(video_list, tmp_path):
  list_path, root = video_list
  out = str(tmp_path / "old")
  result = subprocess.run(
      [sys.executable, "-m", "vivit_jax.data.convert", "--list", list_path, "--video_root",
       root, "--output_dir", out, "--num_shards", "1", "--short_side", "32", "--workers", "0",
       "--no_progress"], capture_output=True, text=True, check=True)
  assert "use `python -m vivit_jax.data.make_tfrecords`" in result.stderr
  assert "converted 4 of 6 videos" in result.stdout
  assert os.path.exists(make_tfrecords.shard_path(out, "train", 0, 1))
