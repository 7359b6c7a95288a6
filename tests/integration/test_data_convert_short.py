"""make_tfrecords' one rule for short videos, on real PyAV mp4s: a truncated
copy and a copy damaged mid-file are kept with their readable frames when
those reach --min_frames_fraction of the announced ones, else skipped; the
summary counts each kind either way."""

import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf

from support import videos as video_files
from vivit_jax.data import make_tfrecords
from vivit_jax.data.sources import tfrecord as dmvr

NUM_FRAMES = 120


@pytest.fixture(scope="module")
def short_videos(tmp_path_factory):
  """Two good 120-frame mp4s, a truncated and a mid-file damaged copy, and a list."""
  root = tmp_path_factory.mktemp("short")
  good = [video_files.write_video(str(root / f"good_{i}.mp4"), num_frames=NUM_FRAMES,
                                  faststart=True) for i in range(2)]
  with open(good[0], "rb") as f:
    whole = f.read()
  truncated, damaged = str(root / "truncated.mp4"), str(root / "damaged.mp4")
  with open(truncated, "wb") as f:  # The index (moov) is in front: it still opens.
    f.write(whole[:len(whole) // 2])
  middle = bytearray(whole)
  at = len(middle) // 2
  middle[at:at + 2000] = np.random.default_rng(0).bytes(2000)
  with open(damaged, "wb") as f:
    f.write(bytes(middle))
  listed = root / "list.txt"
  listed.write_text(f"{good[0]} 0\n{truncated} 1\n{damaged} 0\n{good[1]} 1\n")
  return str(listed), {"truncated": truncated, "damaged": damaged}


def frames_per_video(pattern):
  counts = {}
  for path in tf.io.gfile.glob(pattern):
    for record in tf.data.TFRecordDataset(path):
      parsed = dmvr.parse_sequence_example(record)
      counts[parsed["filename"].numpy().decode()] = int(tf.size(parsed["frames"]))
  return counts


def readable(detail):
  found, announced = map(int, re.match(r"(\d+) of (\d+) frames readable", detail).groups())
  assert announced == NUM_FRAMES
  return found


def run(listed, out, capsys, *flags):
  status = make_tfrecords.main(["--list", listed, "--output_dir", out, "--num_shards", "1",
                                "--short_side", "32", "--workers", "0", "--no_progress",
                                *flags])
  with open(os.path.join(out, "train.summary.json")) as f:
    return status, json.load(f), capsys.readouterr().out


def test_short_videos_below_the_fraction_are_skipped_and_counted(short_videos, tmp_path,
                                                                 capsys):
  listed, bad = short_videos
  status, summary, out = run(listed, str(tmp_path / "strict"), capsys,
                             "--min_frames_fraction", "0.9")
  assert status == 0 and summary["converted"] == 2
  assert (summary["truncated_skipped"], summary["damaged_skipped"]) == (1, 1)
  assert (summary["truncated_kept"], summary["damaged_kept"]) == (0, 0)
  assert summary["skipped_by_reason"] == {"TruncatedVideoError": 1, "DamagedVideoError": 1}
  assert re.match(r"TruncatedVideoError: truncated: \d+ of 120 frames readable, fewer than "
                  r"--min_frames_fraction=0.9 of them", summary["skipped"][bad["truncated"]])
  assert summary["skipped"][bad["damaged"]].startswith("DamagedVideoError: damaged: ")
  assert ("truncated videos: 0 kept short, 1 skipped; damaged mid-file: 0 kept short, "
          "1 skipped (--min_frames_fraction=0.9)") in out
  assert set(frames_per_video(summary["pattern"]).values()) == {NUM_FRAMES}


def test_short_videos_above_the_fraction_keep_their_readable_frames(short_videos, tmp_path,
                                                                    capsys):
  listed, bad = short_videos
  out_dir = str(tmp_path / "lenient")
  status, summary, out = run(listed, out_dir, capsys, "--min_frames_fraction", "0.1")
  assert status == 0 and summary["converted"] == 4 and not summary["skipped"]
  assert (summary["truncated_kept"], summary["damaged_kept"]) == (1, 1)
  kept = {kind: readable(summary[kind][bad[kind]]) for kind in ("truncated", "damaged")}
  assert all(0 < n < NUM_FRAMES for n in kept.values())
  assert "InvalidDataError" in summary["damaged"][bad["damaged"]]
  counts = frames_per_video(summary["pattern"])
  assert counts[bad["truncated"]] == kept["truncated"]
  assert counts[bad["damaged"]] == kept["damaged"]
  assert summary["frames"] == 2 * NUM_FRAMES + sum(kept.values())
  assert f"  kept truncated {bad['truncated']}: {kept['truncated']} of 120" in out

  # The fraction shapes the records: a rerun with another one refuses.
  status = make_tfrecords.main(["--list", listed, "--output_dir", out_dir, "--num_shards", "1",
                                "--short_side", "32", "--workers", "0", "--no_progress"])
  assert status == 2
  assert "--min_frames_fraction=0.5 differs from 0.1" in capsys.readouterr().err


def test_only_short_videos_below_the_fraction_exit_2(short_videos, tmp_path, capsys):
  _, bad = short_videos
  listed = tmp_path / "bad.txt"
  listed.write_text(f"{bad['truncated']} 0\n{bad['damaged']} 1\n")
  status = make_tfrecords.main(["--list", str(listed), "--output_dir", str(tmp_path / "none"),
                                "--num_shards", "1", "--short_side", "32", "--workers", "0",
                                "--no_progress", "--min_frames_fraction", "0.9"])
  captured = capsys.readouterr()
  assert status == 2
  assert "error: only 0 of 2 videos converted" in captured.err
