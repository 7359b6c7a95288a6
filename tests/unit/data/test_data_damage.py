"""Damaged TFRecords and video lists, built for real: every bad video is
skipped, counted by kind, named once per run, and never reaches a batch.

Good videos have label 0, the damaged one label 1, so a label 1 in any batch
means damaged pixels went through.
"""

import json
import logging
import os

import numpy as np
import pytest
import tensorflow as tf

from support import datasets as fx
from vivit_jax import data
from vivit_jax.data import integrity
from vivit_jax.data.sources import tfrecord as dmvr

HEIGHT, WIDTH, FRAMES = 48, 64, 12


def make_config(files, **overrides):
  return fx.tfrecord_data_config(files, **dict(dict(num_classes=2), **overrides))


def good_frames():
  return [fx.encode_jpeg(f) for f in fx.index_video(FRAMES, HEIGHT, WIDTH)]


def write_records(path, videos):
  """`videos`: [(encoded frames, label)], one record each, named video_<i>."""
  with tf.io.TFRecordWriter(path) as writer:
    for i, (frames, label) in enumerate(videos):
      writer.write(dmvr.make_sequence_example(frames, [label], filename=f"video_{i}"))
  return path


def damaged_jpeg(encoded: bytes) -> bytes:
  """Bytes overwritten in the middle of the image data (after the SOS
  header) with a stray marker: libjpeg says "Corrupt JPEG data" and TF still
  returns a picture."""
  damaged = bytearray(encoded)
  start = encoded.index(b"\xff\xda") + 2
  start += int.from_bytes(encoded[start:start + 2], "big")
  middle = (start + len(encoded) - 2) // 2
  damaged[middle:middle + 8] = b"\xff\x5a\x13\x37\xff\x5a\x13\x37"
  return bytes(damaged)


def skip_warnings(caplog, name):
  return [r.getMessage() for r in caplog.records
          if r.levelno == logging.WARNING and name in r.getMessage()]


def all_batches_labels(iterator, count):
  return np.concatenate([next(iterator)["label"] for _ in range(count)])


def test_tf_decodes_the_damaged_jpeg_that_the_structure_check_names():
  encoded = damaged_jpeg(good_frames()[3])
  picture = tf.io.decode_and_crop_jpeg(encoded, [0, 0, 32, 32], channels=3)
  assert picture.shape == (32, 32, 3)  # Without the check it would be trained on.
  assert integrity.jpeg_damage(encoded).startswith(
      "Corrupt JPEG data: marker 0x5a inside the image data")
  assert integrity.jpeg_damage(good_frames()[3]) is None
  assert "cut short" in integrity.jpeg_damage(good_frames()[3][:300])


def test_flipped_byte_inside_a_record_fails_its_checksum_and_is_skipped(tmp_path, caplog):
  path = write_records(str(tmp_path / "flip.tfrecord"),
                       [(good_frames(), 0)] * 2 + [(good_frames(), 1)] + [(good_frames(), 0)] * 3)
  index = dmvr.scan_tfrecord(path)
  with open(path, "r+b") as f:  # Flip one byte in the middle of record 2's data.
    where = int(index.offsets[2] + index.lengths[2] // 2)
    f.seek(where)
    byte = f.read(1)[0]
    f.seek(where)
    f.write(bytes([byte ^ 0x5A]))
  caplog.set_level(logging.WARNING)
  it = data.create_iterator(make_config(path), train=False, batch_size=4)
  batches = list(it)
  valid = np.concatenate([b["valid"] for b in batches])
  assert sorted(np.concatenate([b["video_index"] for b in batches])[valid]) == [0, 1, 3, 4, 5]
  assert (np.concatenate([b["label"] for b in batches])[valid] == 0).all()
  stats = it.stats()
  assert stats["skipped_corrupt"] == 1 and stats["skipped_corrupt_record"] == 1
  assert stats["skipped_reasons"] == {
      f"{path} record 2": "record checksum mismatch (bytes damaged after writing)"}
  assert len(skip_warnings(caplog, f"{path} record 2: record checksum mismatch")) == 1


def test_damaged_jpeg_frame_is_a_corrupt_clip_counted_every_epoch_warned_once(
    tmp_path, caplog):
  frames = good_frames()
  frames[4], frames[5] = damaged_jpeg(frames[4]), damaged_jpeg(frames[5])  # Every clip hits one.
  path = write_records(str(tmp_path / "jpeg.tfrecord"),
                       [(good_frames(), 0)] * 3 + [(frames, 1)] + [(good_frames(), 0)] * 2)
  caplog.set_level(logging.WARNING)
  config = make_config(path)
  train = data.create_iterator(config, train=True, batch_size=5, seed=0)
  labels = all_batches_labels(train, 4)  # 20 clips of 5 good videos: 4 epochs.
  assert (labels == 0).all()
  stats = train.stats()
  assert stats["skipped_corrupt_frame"] == stats["skipped_corrupt"] >= 3
  name = f"{path} record 3"
  assert stats["skipped_reasons"][name].startswith(
      "frame 4 of 12: Corrupt JPEG data: marker 0x5a inside the image data")
  assert len(skip_warnings(caplog, f"skipped {name}: frame 4 of 12")) == 1

  it = data.create_iterator(config, train=False, batch_size=3)
  batches = list(it)
  valid = np.concatenate([b["valid"] for b in batches])
  assert 3 not in np.concatenate([b["video_index"] for b in batches])[valid]
  assert it.stats()["skipped_corrupt_frame"] == 1


def test_skip_counts_are_part_of_the_state_and_continue_after_resume(tmp_path):
  bad = [damaged_jpeg(f) for f in good_frames()]
  path = write_records(str(tmp_path / "resume.tfrecord"),
                       [(good_frames(), 0), (bad, 1), (good_frames(), 0), (good_frames(), 0)])
  config = make_config(path)
  straight = data.create_iterator(config, train=True, batch_size=3, seed=1)
  for _ in range(3):
    next(straight)
  state = json.loads(json.dumps(straight.get_state()))
  assert state["skipped"]["corrupt_frame"] >= 2
  expected = [next(straight) for _ in range(3)]
  resumed = data.create_iterator(config, train=True, batch_size=3, seed=1, state=state)
  assert resumed.stats()["skipped_corrupt"] == state["skipped"]["corrupt_frame"]
  for batch in expected:
    np.testing.assert_array_equal(next(resumed)["video"], batch["video"])
  assert resumed.get_state() == straight.get_state()
  assert resumed.stats()["skipped_corrupt"] == straight.stats()["skipped_corrupt"] >= 4


def test_garbage_and_empty_files_in_the_glob_are_named_for_what_they_are(tmp_path, caplog):
  write_records(str(tmp_path / "part-0.tfrecord"), [(good_frames(), 0)] * 3)
  with open(tmp_path / "part-1.tfrecord", "wb") as f:
    f.write(np.random.default_rng(0).bytes(3000))
  open(tmp_path / "part-2.tfrecord", "wb").close()
  caplog.set_level(logging.WARNING)
  it = data.create_iterator(make_config(str(tmp_path / "part-*.tfrecord")), train=False,
                            batch_size=3)
  assert it.num_videos == 3
  stats = it.stats()
  assert (stats["not_tfrecord_files"], stats["empty_files"], stats["truncated_files"]) == (
      1, 1, 0)
  messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
  garbage = [m for m in messages if "part-1.tfrecord" in m]
  assert garbage == [f"{tmp_path / 'part-1.tfrecord'}: not a TFRecord file (3000 bytes, no "
                     "valid record header at byte 0): ignored"]
  assert [m for m in messages if "part-2.tfrecord" in m] == [
      f"{tmp_path / 'part-2.tfrecord'}: empty file (0 bytes): no records"]
  assert not any("truncated" in m for m in messages)

  with pytest.raises(ValueError, match=r"no records .*\(part-1.tfrecord: not a TFRecord "
                     r"file; part-2.tfrecord: empty file\)"):
    data.create_iterator(make_config(f"{tmp_path / 'part-1.tfrecord'},"
                                     f"{tmp_path / 'part-2.tfrecord'}"), train=False,
                         batch_size=3)


def test_cut_off_last_record_is_still_called_truncated(tmp_path, caplog):
  path = write_records(str(tmp_path / "cut.tfrecord"), [(good_frames(), 0)] * 3)
  with open(path, "rb") as f:
    whole = f.read()
  with open(path, "wb") as f:
    f.write(whole[:len(whole) - 500])
  index = dmvr.scan_tfrecord(path)
  assert index.problem == "truncated" and len(index.offsets) == 2
  assert index.message.startswith("truncated file:")
  caplog.set_level(logging.WARNING)
  it = data.create_iterator(make_config(path), train=False, batch_size=2)
  assert it.num_videos == 2
  assert skip_warnings(caplog, "truncated file:")


def test_probe_goes_past_bad_videos_at_the_head_of_the_list(tmp_path):
  root = tmp_path / "videos"
  root.mkdir()
  bad = []
  for i in range(6):
    bad.append(str(root / f"bad_{i}.mp4"))
    with open(bad[-1], "wb") as f:
      f.write(np.random.default_rng(i).bytes(2000))
  good = [fx.write_mp4(str(root / f"good_{i}.mp4"), fx.index_video(16, HEIGHT, WIDTH))
          for i in range(2)]
  config = dict(make_config(""), source="video_list", probe_videos=4)
  listed = fx.write_video_list(str(tmp_path / "list.txt"),
                               [(p, 0) for p in bad] + [(p, 0) for p in good])
  it = data.create_iterator(dict(config, eval_list=listed), train=False, batch_size=2)
  assert sum(b["valid"].sum() for b in it) == 2
  assert it.stats()["skipped_unreadable"] == 6

  only_bad = fx.write_video_list(str(tmp_path / "bad.txt"), [(p, 0) for p in bad])
  with pytest.raises(ValueError, match=r"none of the 6 videos tried \(all of this "
                     r"process's videos\) yields a clip, e\.g\. \[.*bad_0\.mp4: no readable"):
    data.create_iterator(dict(config, eval_list=only_bad), train=False, batch_size=2)


def test_video_list_skip_is_named_once_across_epochs(tmp_path, caplog):
  good = [fx.write_mp4(str(tmp_path / f"good_{i}.mp4"), fx.index_video(16, HEIGHT, WIDTH))
          for i in range(3)]
  broken = str(tmp_path / "broken.mp4")
  with open(broken, "wb") as f:
    f.write(np.random.default_rng(7).bytes(4000))
  listed = fx.write_video_list(str(tmp_path / "list.txt"),
                               [(good[0], 0), (broken, 1), (good[1], 0), (good[2], 0)])
  caplog.set_level(logging.WARNING)
  config = dict(make_config(""), source="video_list", train_list=listed)
  train = data.create_iterator(config, train=True, batch_size=3, seed=0)
  assert (all_batches_labels(train, 5) == 0).all()  # 15 clips: 5 epochs of 3 good videos.
  assert train.stats()["skipped_unreadable"] >= 4
  warned = skip_warnings(caplog, f"skipped {broken}: InvalidDataError")
  assert len(warned) == 1 and os.path.basename(broken) in warned[0]
