"""Videos stored one per TFRecord record: DMVR files, or a TFDS dataset.

The source indexes every record of the split (see `records.py`) and keeps
this process's contiguous slice; `load(i)` reads local video `i` by offset,
so any order costs the same. Frames stay encoded until `read_clips` decodes
the sampled ones (JPEG: only the crop window).
"""

import dataclasses
from typing import Callable, List, Sequence

import numpy as np
import tensorflow as tf

from vivit_jax.data import dmvr
from vivit_jax.data import frame_decode
from vivit_jax.data import records


@dataclasses.dataclass
class RecordSelection:
  """Records `[skip, skip + take)` of one TFRecord file, in split order."""
  path: str
  skip: int = 0
  take: int = -1  # -1: to the end of the file.


class RecordSource:
  """Encoded-frame videos addressed by local id in `[0, num_videos)`.

  `parse(serialized)` maps a record to {"frames": (N,) string, "labels": (L,)
  int64, "filename": scalar string}.
  """

  kind = "frames"

  def __init__(self, selections: Sequence[RecordSelection], parse: Callable,
               process_index: int, process_count: int, name: str):
    self.name = name
    indexes = records.scan_tfrecords(sorted({s.path for s in selections}))
    by_path = {index.path: index for index in indexes}
    self.truncated_files = [index.path for index in indexes if index.truncated_bytes]
    file_ids, offsets, lengths, local_positions = [], [], [], []
    paths = [s.path for s in selections]
    for file_id, selection in enumerate(selections):
      index = by_path[selection.path]
      end = len(index.offsets) if selection.take < 0 else selection.skip + selection.take
      chosen = slice(selection.skip, min(end, len(index.offsets)))
      count = len(index.offsets[chosen])
      file_ids.append(np.full(count, file_id, np.int64))
      offsets.append(index.offsets[chosen])
      lengths.append(index.lengths[chosen])
      local_positions.append(np.arange(selection.skip, selection.skip + count))
    self.num_videos_total = int(sum(len(f) for f in file_ids))
    if self.num_videos_total == 0:
      raise ValueError(f"{name}: no records in {paths[:3]}{'...' if len(paths) > 3 else ''}")
    self.shard_sizes = shard_sizes(self.num_videos_total, process_count)
    self.first_video = sum(self.shard_sizes[:process_index])
    self.num_videos = self.shard_sizes[process_index]
    local = slice(self.first_video, self.first_video + self.num_videos)
    self._file_ids = np.concatenate(file_ids)[local]
    self._offsets = np.concatenate(offsets)[local]
    self._lengths = np.concatenate(lengths)[local]
    self._record_in_file = np.concatenate(local_positions)[local]
    self._reader = records.RecordReader(paths)
    self._parse = parse

  def describe(self, local_id: int) -> str:
    local_id = int(local_id)
    return (f"{self._reader.paths[self._file_ids[local_id]]} record "
            f"{self._record_in_file[local_id]}")

  def stats(self) -> dict:
    return {"truncated_files": len(self.truncated_files)}

  def _read(self, local_id):
    location = [tf.gather(tf.constant(array), local_id)
                for array in (self._file_ids, self._offsets, self._lengths)]
    serialized = tf.numpy_function(self._reader.read, location, tf.string, stateful=False)
    return tf.ensure_shape(serialized, [])

  def load(self, local_id, with_frames: bool = True) -> dict:
    """Local video id (scalar int) -> dict of tensors; "ok" False if the
    record has no frames or frames that are not JPEG/PNG data."""
    parsed = self._parse(self._read(local_id))
    video = {"labels": tf.cast(parsed["labels"], tf.int64),
             "label": dmvr.first_label(parsed["labels"])}
    if with_frames:
      video["frames"] = parsed["frames"]
      video["num_frames"] = tf.size(parsed["frames"], out_type=tf.int32)
      video["ok"] = frame_decode.frames_look_valid(parsed["frames"])
    return video

  def frame_shape(self, video):
    return frame_decode.frame_shape(video["frames"][0])

  def read_clips(self, video, indices, boxes=None) -> tuple:
    """`(K, T)` frame indices -> (list of K `(T, h, w, 3)` uint8, ok)."""
    clips = []
    for k in range(indices.shape[0]):
      encoded = tf.gather(video["frames"], indices[k])
      clips.append(frame_decode.decode_frames(encoded, None if boxes is None else boxes[k]))
    return clips, tf.constant(True)

  def probe(self, local_ids: Sequence[int]) -> List[dict]:
    """Eagerly reads videos: [{"label", "labels", "num_frames"}] per id."""
    found = []
    for local_id in local_ids:
      video = self.load(tf.constant(local_id, tf.int64))
      found.append({"label": int(video["label"]), "labels": video["labels"].numpy().tolist(),
                    "num_frames": int(video["num_frames"])})
    return found


def shard_sizes(num_videos: int, process_count: int) -> List[int]:
  """Contiguous near-equal split: process p gets `shard_sizes[p]` videos."""
  return [(p + 1) * num_videos // process_count - p * num_videos // process_count
          for p in range(process_count)]


def dmvr_source(patterns: str, key: str, process_index: int, process_count: int):
  """A RecordSource over the DMVR TFRecords matched by comma-separated globs."""
  paths = []
  for pattern in [p.strip() for p in patterns.split(",") if p.strip()]:
    matched = sorted(tf.io.gfile.glob(pattern))
    if not matched:
      raise FileNotFoundError(f"data.{key}: {pattern!r} matches no files")
    paths.extend(matched)
  if not paths:
    raise ValueError(f"data.{key} is empty: set it to a TFRecord glob pattern")
  selections = [RecordSelection(path) for path in paths]
  return RecordSource(selections, dmvr.parse_sequence_example, process_index,
                      process_count, name=f"data.{key}={patterns!r}")
