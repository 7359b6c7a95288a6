"""Video-list source: h264 mp4 files written here, decoded with PyAV."""

import json
import os

import numpy as np
import pytest

from support import datasets as fx
from vivit_jax import data
from vivit_jax.data import pyav_decode

LENGTHS = (30, 41, 52, 36, 47, 58)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
  directory = tmp_path_factory.mktemp("mp4")
  entries = []
  for i, length in enumerate(LENGTHS):
    name = f"video_{i}.mp4"
    fx.write_mp4(str(directory / name), fx.index_video(length, 48, 64))
    entries.append((name, i % 3))
  list_path = fx.write_video_list(str(directory / "train.txt"), entries)
  return str(directory), list_path


def make_config(list_path, root, **overrides):
  config = dict(source="video_list", train_list=list_path, eval_list=list_path,
                video_root=root, num_classes=3, num_frames=4, stride=3, image_size=32,
                resize_short_side=40, mean=(0.0,) * 3, std=(1.0,) * 3, probe_videos=4)
  config.update(overrides)
  return config


def frame_indices(batch):
  return fx.decode_frame_index(fx.unnormalize(batch["video"], (0,) * 3, (1,) * 3))


def test_decode_frames_seeks_and_returns_requested_frames(videos):
  root, _ = videos
  path = os.path.join(root, "video_5.mp4")
  assert pyav_decode.probe(path) == (58, 48, 64)
  wanted = [40, 43, 46, 49, 57, 57]
  frames = pyav_decode.decode_frames(path, wanted)
  assert frames.shape == (6, 48, 64, 3)
  np.testing.assert_array_equal(fx.decode_frame_index(frames), wanted)


def test_train_clips_in_order_with_stride(videos):
  root, list_path = videos
  it = data.create_iterator(make_config(list_path, root, clips_per_video=2), train=True,
                            batch_size=4, seed=0)
  for _ in range(3):
    batch = next(it)
    assert batch["video"].shape == (4, 4, 32, 32, 3) and batch["label"].dtype == np.int32
    indices = frame_indices(batch)
    assert (np.diff(indices, axis=1) == 3).all(), indices
    assert (indices >= 0).all() and (indices < max(LENGTHS)).all()


def test_eval_views_cover_each_video_in_order(videos):
  root, list_path = videos
  config = make_config(list_path, root, eval_temporal_views=2, eval_spatial_views=3)
  it = data.create_iterator(config, train=False, batch_size=5)
  batches = list(it)
  valid = np.concatenate([b["valid"] for b in batches])
  index = np.concatenate([b["video_index"] for b in batches])[valid]
  np.testing.assert_array_equal(index, np.repeat(np.arange(len(LENGTHS)), 6))
  indices = np.concatenate([frame_indices(b) for b in batches])[valid].reshape(-1, 2, 3, 4)
  for video, length in enumerate(LENGTHS):
    assert indices[video, 0, 0, 0] == 0 and indices[video, 1, 0, -1] == length - 1
    assert (indices[video] == indices[video, :, :1]).all()


def test_resume_gives_the_next_batch(videos):
  root, list_path = videos
  config = make_config(list_path, root, crop="multi_scale")
  it = data.create_iterator(config, train=True, batch_size=4, seed=5)
  next(it), next(it)
  state = json.loads(json.dumps(it.get_state()))
  expected = next(it)
  resumed = data.create_iterator(config, train=True, batch_size=4, seed=5, state=state)
  np.testing.assert_array_equal(next(resumed)["video"], expected["video"])


def test_corrupt_and_missing_files_are_skipped_and_counted(videos, tmp_path):
  root, _ = videos
  bad = fx.write_corrupt_files(str(tmp_path), os.path.join(root, "video_0.mp4"))
  entries = [(os.path.join(root, "video_0.mp4"), 0), (bad["empty"], 1),
             (os.path.join(root, "video_1.mp4"), 1), (bad["garbage"], 2),
             (bad["truncated"], 0), (str(tmp_path / "missing.mp4"), 1),
             (os.path.join(root, "video_2.mp4"), 2)]
  list_path = fx.write_video_list(str(tmp_path / "mixed.csv"), entries, comma=True)
  config = make_config(list_path, "", probe_videos=16)
  it = data.create_iterator(config, train=False, batch_size=2)
  batches = list(it)
  valid = np.concatenate([b["valid"] for b in batches])
  np.testing.assert_array_equal(np.concatenate([b["video_index"] for b in batches])[valid],
                                [0, 2, 6])
  stats = it.stats()
  assert stats["skipped_corrupt"] == 4 and stats["decode_failures"] >= 4
  assert sorted(stats["skipped_examples"]) == sorted(
      [bad["empty"], bad["garbage"], bad["truncated"], str(tmp_path / "missing.mp4")])
  train = data.create_iterator(config, train=True, batch_size=3, seed=0)
  for _ in range(4):  # 12 clips: more than one epoch of the 3 good videos.
    assert next(train)["video"].shape[0] == 3
  assert train.stats()["skipped_corrupt"] >= 4


def test_list_errors_name_the_file_and_key(videos, tmp_path):
  root, list_path = videos
  with pytest.raises(FileNotFoundError, match="data.train_list"):
    data.create_iterator(make_config(str(tmp_path / "nope.txt"), root), train=True,
                         batch_size=2)
  bad_line = tmp_path / "bad.txt"
  bad_line.write_text("video_0.mp4 0\nvideo_1.mp4 one\n")
  with pytest.raises(ValueError, match=r"bad.txt:2: label 'one'"):
    data.create_iterator(make_config(str(bad_line), root), train=True, batch_size=2)
  with pytest.raises(ValueError, match=r"train.txt: video 2 has label 2, outside"):
    data.create_iterator(make_config(list_path, root, num_classes=2), train=False,
                         batch_size=2)
  with pytest.raises(ValueError, match=r"spans 91 frames, longer than every probed video"):
    data.create_iterator(make_config(list_path, root, num_frames=31), train=True,
                         batch_size=2)
