"""`python -m vivit_jax.data.make_tfrecords`: mp4 + list -> DMVR TFRecords, resumable."""

import glob
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
  # The pattern users pass matches the shards alone (no summary or options file).
  assert sorted(glob.glob(os.path.join(out, "train-*"))) == [
      make_tfrecords.shard_path(out, "train", s, 2) for s in range(2)]
  assert os.path.exists(os.path.join(out, "train.00001-of-00002.summary.json"))
  it = data.create_iterator(dict(source="tfrecord", train_files=os.path.join(out, "train-*"),
                                 num_classes=2, num_frames=4, image_size=32,
                                 resize_short_side=40), train=True, batch_size=2)
  assert next(it)["video"].shape == (2, 4, 32, 32, 3)


def _cli(*args):
  return subprocess.run([sys.executable, "-m", "vivit_jax.data.make_tfrecords", "--workers",
                         "0", "--no_progress", *args], capture_output=True, text=True)


def test_run_where_no_video_converts_fails_and_the_corrected_rerun_converts(tmp_path):
  videos = tmp_path / "videos"
  videos.mkdir()
  entries = []
  for i in range(3):
    fx.write_mp4(str(videos / f"v{i}.mp4"), fx.index_video(12, 32, 40))
    entries.append((f"v{i}.mp4", i % 2))
  list_path = fx.write_video_list(str(tmp_path / "list.txt"), entries)
  out = str(tmp_path / "records")
  common = ["--list", list_path, "--output_dir", out, "--num_shards", "2",
            "--short_side", "32"]
  forgot_root = _cli(*common)
  assert forgot_root.returncode == 2
  assert "converted 0 of 3 videos" in forgot_root.stdout
  error_lines = [l for l in forgot_root.stderr.splitlines() if l.startswith("error:")]
  assert len(error_lines) == 1 and "3 listed files do not exist" in error_lines[0]
  assert "check --video_root (now (unset))" in error_lines[0]
  assert "Traceback" not in forgot_root.stderr
  assert not os.path.exists(make_tfrecords.shard_path(out, "train", 0, 2))

  fixed = _cli(*common, "--video_root", str(videos))
  assert fixed.returncode == 0, fixed.stderr
  for tf_line in ("absl::InitializeLog", "oneDNN custom operations", "cpu_feature_guard"):
    assert tf_line not in forgot_root.stderr + fixed.stderr
  assert "converted 3 of 3 videos" in fixed.stdout
  assert "(2 written now, 0 already complete)" in fixed.stdout


def test_converted_fraction_below_the_threshold_fails_and_zero_accepts(tmp_path):
  fx.write_mp4(str(tmp_path / "good.mp4"), fx.index_video(12, 32, 40))
  bad = fx.write_corrupt_files(str(tmp_path), str(tmp_path / "good.mp4"))
  list_path = fx.write_video_list(str(tmp_path / "list.txt"),
                                  [("good.mp4", 0), (bad["garbage"], 1), (bad["empty"], 1)])
  common = ["--list", list_path, "--video_root", str(tmp_path), "--num_shards", "1",
            "--short_side", "32"]
  strict = _cli(*common, "--output_dir", str(tmp_path / "a"))
  assert strict.returncode == 2 and "converted 1 of 3 videos" in strict.stdout
  line, = [l for l in strict.stderr.splitlines() if l.startswith("error:")]
  assert "only 1 of 3 videos converted (below --min_converted_fraction=0.5)" in line
  assert "lower --min_converted_fraction to accept" in line
  lenient = _cli(*common, "--output_dir", str(tmp_path / "b"), "--min_converted_fraction", "0")
  assert lenient.returncode == 0 and "error:" not in lenient.stderr


def test_rerun_with_other_output_options_refuses_until_overwrite(tmp_path):
  for i in range(2):
    fx.write_mp4(str(tmp_path / f"v{i}.mp4"), fx.index_video(10, 48, 64))
  list_path = fx.write_video_list(str(tmp_path / "list.txt"), [("v0.mp4", 0), ("v1.mp4", 1)])
  out = str(tmp_path / "records")
  common = ["--list", list_path, "--video_root", str(tmp_path), "--output_dir", out,
            "--num_shards", "2"]
  assert _cli(*common, "--short_side", "32").returncode == 0
  with open(os.path.join(out, "train.options.json")) as f:
    assert json.load(f)["short_side"] == 32
  changed = _cli(*common, "--short_side", "40")
  assert changed.returncode == 2 and changed.stdout == ""
  assert changed.stderr.strip().splitlines() == [
      f"error: --short_side=40 differs from 32 recorded for the existing shards in "
      f"{os.path.join(out, 'train.options.json')}: pass the same value, or --overwrite "
      "to redo the shards"]
  redone = _cli(*common, "--short_side", "40", "--overwrite")
  assert redone.returncode == 0 and "(2 written now, 0 already complete)" in redone.stdout
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  record = next(iter(tf.data.TFRecordDataset(make_tfrecords.shard_path(out, "train", 0, 2))))
  example = tf.train.SequenceExample.FromString(record.numpy())
  jpeg = example.feature_lists.feature_list["image/encoded"].feature[0].bytes_list.value[0]
  assert tf.io.decode_jpeg(jpeg).shape[0] == 40


def test_audio_only_file_is_skipped_as_having_no_video_stream(tmp_path):
  fx.write_mp4(str(tmp_path / "v0.mp4"), fx.index_video(12, 32, 40))
  fx.write_audio_only(str(tmp_path / "speech.mp4"))
  list_path = fx.write_video_list(str(tmp_path / "list.txt"),
                                  [("v0.mp4", 0), ("speech.mp4", 1)])
  result = _cli("--list", list_path, "--video_root", str(tmp_path), "--output_dir",
                str(tmp_path / "records"), "--num_shards", "1", "--short_side", "32")
  assert result.returncode == 0, result.stderr
  assert "converted 1 of 2 videos" in result.stdout
  assert "skipped 1 videos: {'NoVideoStreamError': 1}" in result.stdout
  assert (f"{tmp_path / 'speech.mp4'}: NoVideoStreamError: no video stream (streams: audio)"
          in result.stdout)
  assert "IndexError" not in result.stdout + result.stderr


def test_quoted_list_paths_may_hold_commas_and_unquoted_ones_get_a_hint(tmp_path):
  names = ["a,b.mp4", "say \"hi\".mp4", "plain name.mp4"]
  for i, name in enumerate(names):
    fx.write_mp4(str(tmp_path / name), fx.index_video(10 + i, 32, 40))
  list_path = tmp_path / "list.csv"
  list_path.write_text('"a,b.mp4",0\n"say ""hi"".mp4" 1\nplain name.mp4 2\n')
  out = str(tmp_path / "records")
  summary = make_tfrecords.write_tfrecords(str(list_path), out, num_shards=1, short_side=32,
                                          video_root=str(tmp_path), progress=False)
  assert summary["converted"] == 3 and summary["skipped"] == {}
  assert summary["frames"] == 10 + 11 + 12
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  names_read = [tf.train.SequenceExample.FromString(r.numpy()).context.feature[
      "video/filename"].bytes_list.value[0].decode()
                for r in tf.data.TFRecordDataset(make_tfrecords.shard_path(out, "train", 0, 1))]
  assert names_read == [str(tmp_path / n) for n in names]

  unquoted = tmp_path / "bad.txt"
  unquoted.write_text("a,b.mp4 0\n")
  result = _cli("--list", str(unquoted), "--video_root", str(tmp_path), "--output_dir",
                str(tmp_path / "bad"), "--num_shards", "1")
  assert result.returncode == 2
  assert result.stderr.strip().splitlines() == [
      f"error: {unquoted}:1: label 'b.mp4 0' is not an integer: quote a path that "
      'contains a comma, CSV-style: "a,b.mp4",3']
