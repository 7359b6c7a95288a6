"""Source "video_list": video files named in a VideoMAE-style list, decoded with PyAV.

A list file has one video per line, `path label` or `path,label`. The label
is the last field: after the last comma if the line has one, else after the
last space, so `a b.mp4 3` and `a,b.mp4,3` both work. A path that contains a
comma in a space-separated list, or a quote, is quoted CSV-style:
`"a,b.mp4",3` or `"a,b.mp4" 3` (`""` for a quote inside).
Relative paths are joined to `data.video_root`. Files are opened inside the
pipeline through `tf.numpy_function`; a file that fails to open or decode is
logged with the reason and its video is skipped.
"""

import collections
import logging
import os
import threading
from typing import List, Sequence

import numpy as np
import tensorflow as tf

from vivit_jax.data import pyav_decode
from vivit_jax.data.registry import register_source
from vivit_jax.data.sources import shard_sizes


def read_video_list(list_path: str, key: str, video_root: str = "") -> tuple:
  """`(paths, labels)` from a list file; errors name the file and line."""
  if not list_path:
    raise ValueError(f"data.{key} is empty: set it to a video list file")
  if not tf.io.gfile.exists(list_path):
    raise FileNotFoundError(f"data.{key}: list file {list_path!r} does not exist")
  paths, labels = [], []
  with tf.io.gfile.GFile(list_path) as f:
    for line_number, line in enumerate(f, start=1):
      line = line.strip()
      if not line or line.startswith("#"):
        continue
      if line.startswith('"'):
        fields = _split_quoted(line)
      else:
        fields = line.rsplit("," if "," in line else None, 1)
      if fields is None or len(fields) != 2:
        raise ValueError(f"{list_path}:{line_number}: expected `path label`, got {line!r}")
      path, label = fields[0].strip(), fields[1].strip()
      try:
        labels.append(int(label))
      except ValueError:
        hint = (": quote a path that contains a comma, CSV-style: \"a,b.mp4\",3"
                if "," in line and not line.startswith('"') else "")
        raise ValueError(f"{list_path}:{line_number}: label {label!r} is not an "
                         f"integer{hint}") from None
      paths.append(path if os.path.isabs(path) or not video_root
                   else os.path.join(video_root, path))
  if not paths:
    raise ValueError(f"data.{key}: list file {list_path!r} names no videos")
  return paths, labels


def _split_quoted(line: str):
  """`"pa""th",3` or `"path" 3` -> [path, label]; None if the quote never closes."""
  path, i = [], 1
  while i < len(line):
    if line[i] == '"':
      if line[i + 1:i + 2] == '"':
        path.append('"')
        i += 2
        continue
      rest = line[i + 1:].strip()
      return ["".join(path), rest[1:] if rest.startswith(",") else rest]
    path.append(line[i])
    i += 1
  return None


class VideoListSource:
  """Videos of a list file, addressed by local id in `[0, num_videos)`."""

  kind = "file"

  def __init__(self, list_path: str, key: str, video_root: str, process_index: int,
               process_count: int):
    paths, labels = read_video_list(list_path, key, video_root)
    self.name = f"data.{key}={list_path!r}"
    self.list_path = list_path
    self.num_videos_total = len(paths)
    self.shard_sizes = shard_sizes(len(paths), process_count)
    self.first_video = sum(self.shard_sizes[:process_index])
    self.num_videos = self.shard_sizes[process_index]
    local = slice(self.first_video, self.first_video + self.num_videos)
    self.all_labels = labels
    self.paths = paths[local]
    self.labels = np.asarray(labels[local], np.int32)
    self._failures = collections.Counter()
    self._reasons = {}
    self._lock = threading.Lock()

  def describe(self, local_id: int) -> str:
    return self.paths[int(local_id)]

  def stats(self) -> dict:
    with self._lock:
      return {"decode_failures": sum(self._failures.values())}

  def _fail(self, path: str, error: Exception):
    # Named once per run by the iterator (`diagnose`), not at every attempt.
    with self._lock:
      self._failures[path] += 1
      self._reasons[path] = f"{type(error).__name__}: {error}"
    logging.debug("cannot decode video %s: %s: %s", path, type(error).__name__, error)

  def diagnose(self, local_id: int):
    """`("unreadable", reason)`: why video `local_id` yielded no clip."""
    path = self.paths[int(local_id)]
    with self._lock:
      reason = self._reasons.get(path)
    if reason is None:
      try:
        num_frames, _, _ = pyav_decode.probe(path)
        pyav_decode.decode_frames(path, [0, num_frames - 1])
        reason = "decoded on a second try (an intermittent read error?)"
      except Exception as error:  # pylint: disable=broad-except
        reason = f"{type(error).__name__}: {error}"
    return "unreadable", reason

  def _probe(self, local_id):
    path = self.paths[int(local_id)]
    try:
      num_frames, height, width = pyav_decode.probe(path)
      return np.int32(num_frames), np.int32(height), np.int32(width), True
    except Exception as error:  # pylint: disable=broad-except
      self._fail(path, error)
      return np.int32(0), np.int32(1), np.int32(1), False

  def _decode(self, local_id, indices):
    path = self.paths[int(local_id)]
    try:
      return pyav_decode.decode_frames(path, indices), True
    except Exception as error:  # pylint: disable=broad-except
      self._fail(path, error)
      return np.zeros((len(indices), 2, 2, 3), np.uint8), False

  def load(self, local_id, with_frames: bool = True) -> dict:
    """Local id -> {"id", "label", "labels", "num_frames", "height", "width", "ok"}."""
    label = tf.gather(tf.constant(self.labels), local_id)
    video = {"id": local_id, "label": label, "labels": tf.cast(label, tf.int64)[None]}
    if with_frames:
      num_frames, height, width, ok = tf.numpy_function(
          self._probe, [local_id], [tf.int32, tf.int32, tf.int32, tf.bool], stateful=False)
      video.update(num_frames=tf.ensure_shape(num_frames, []), ok=tf.ensure_shape(ok, []),
                   height=tf.ensure_shape(height, []), width=tf.ensure_shape(width, []))
    return video

  def frame_shape(self, video):
    return video["height"], video["width"]

  def read_clips(self, video, indices, boxes=None) -> tuple:
    """`(K, T)` indices -> (list of K `(T, h, w, 3)` uint8, ok); one decode
    pass covers all K clips."""
    frames, ok = tf.numpy_function(self._decode, [video["id"], tf.reshape(indices, [-1])],
                                   [tf.uint8, tf.bool], stateful=False)
    frames = tf.ensure_shape(frames, [None, None, None, 3])
    num_clips, num_frames = indices.shape
    clips = []
    for k in range(num_clips):
      clip = frames[k * num_frames:(k + 1) * num_frames]
      if boxes is not None:
        box = boxes[k]
        clip = clip[:, box[0]:box[0] + box[2], box[1]:box[1] + box[3], :]
      clips.append(clip)
    return clips, tf.ensure_shape(ok, [])

  def probe(self, local_ids: Sequence[int]) -> List[dict]:
    found = []
    for local_id in local_ids:
      num_frames, _, _, _ = self._probe(local_id)
      label = int(self.labels[local_id])
      found.append({"label": label, "labels": [label], "num_frames": int(num_frames)})
    return found


@register_source("video_list")
def video_list_source(config, train: bool, process_index: int, process_count: int):
  """`data.train_list` / `data.eval_list`, relative paths under `data.video_root`."""
  key = "train_list" if train else "eval_list"
  return VideoListSource(config[key], key, config.video_root, process_index, process_count)
