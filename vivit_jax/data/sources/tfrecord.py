"""Source "tfrecord" (DMVR TFRecords), and videos stored one per TFRecord record.

Records are read by offset (`vivit_jax.data.record_files`: the file index,
with each file's problem named, and a reader that checks record checksums;
`scan_tfrecord`, `FileIndex` and `RecordReader` are re-exported here).

`RecordSource` indexes every record of a split and keeps this process's
contiguous slice; `load(i)` reads local video `i` by offset, so any order
costs the same. Frames stay encoded until `read_clips` decodes the sampled
ones (JPEG: only the crop window). The "tfds" source reuses it.

DMVR layout (scenic's ViViT): a record is a serialised `tf.train.SequenceExample` with
  context  `clip/label/index`  int64 list (first = the class; all = multi-label)
           `clip/label/text`   bytes (class name, optional)
           `video/filename`    bytes (source file, optional)
  features `image/encoded`     one encoded JPEG (or PNG) per frame, in order.
"""

import dataclasses
import logging
import os
import re
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from vivit_jax.data import frame_decode
from vivit_jax.data import integrity
from vivit_jax.data.record_files import (_PROBLEM_WORDS, FileIndex, RecordReader,  # noqa: F401
                                         scan_tfrecord, scan_tfrecords)
from vivit_jax.data.registry import register_source
from vivit_jax.data.sources import shard_sizes

FRAMES_KEY = "image/encoded"
LABEL_KEY = "clip/label/index"
TEXT_KEY = "clip/label/text"
FILENAME_KEY = "video/filename"


def make_sequence_example(encoded_frames: Sequence[bytes], labels: Sequence[int],
                          label_text: str = "", filename: str = "") -> bytes:
  """Serialised SequenceExample for one video of encoded frames."""
  example = tf.train.SequenceExample()
  context = example.context.feature
  context[LABEL_KEY].int64_list.value.extend(int(label) for label in labels)
  context[TEXT_KEY].bytes_list.value.append(label_text.encode())
  context[FILENAME_KEY].bytes_list.value.append(filename.encode())
  frames = example.feature_lists.feature_list[FRAMES_KEY]
  for encoded in encoded_frames:
    frames.feature.add().bytes_list.value.append(encoded)
  return example.SerializeToString()


def parse_sequence_example(serialized, with_frames: bool = True):
  """Scalar string tensor -> dict of tensors.

  Returns "frames" `(N,)` string (if `with_frames`), "labels" `(L,)` int64,
  "label_text" and "filename" scalar strings (empty when absent).
  """
  context_features = {
      LABEL_KEY: tf.io.VarLenFeature(tf.int64),
      TEXT_KEY: tf.io.FixedLenFeature([], tf.string, default_value=""),
      FILENAME_KEY: tf.io.FixedLenFeature([], tf.string, default_value=""),
  }
  sequence_features = {FRAMES_KEY: tf.io.FixedLenSequenceFeature([], tf.string)}
  context, sequence = tf.io.parse_single_sequence_example(
      serialized, context_features=context_features,
      sequence_features=sequence_features if with_frames else None)
  parsed = {
      "labels": tf.sparse.to_dense(context[LABEL_KEY]),
      "label_text": context[TEXT_KEY],
      "filename": context[FILENAME_KEY],
  }
  if with_frames:
    parsed["frames"] = sequence[FRAMES_KEY]
  return parsed


def first_label(labels, default: Optional[int] = -1):
  """The class of a `(L,)` label list; `default` when the list is empty."""
  return tf.cast(tf.cond(tf.size(labels) > 0, lambda: labels[0],
                         lambda: tf.constant(default, tf.int64)), tf.int32)


def _op_message(error) -> str:
  """A TF op error's message, one line, without the `{{function_node ...}}` prefix."""
  text = error.message.strip().splitlines()[0] if error.message.strip() else repr(error)
  return re.sub(r"^\{\{[^}]*\}\}\s*", "", text)[:200]


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
    indexes = scan_tfrecords(sorted({s.path for s in selections}))
    by_path = {index.path: index for index in indexes}
    self.truncated_files = [index.path for index in indexes if index.problem == "truncated"]
    self.file_problems = {index.path: index.problem for index in indexes if index.problem}
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
      problems = "; ".join(f"{os.path.basename(path)}: {_PROBLEM_WORDS[kind]}"
                           for path, kind in list(self.file_problems.items())[:3])
      raise ValueError(f"{name}: no records in {paths[:3]}{'...' if len(paths) > 3 else ''}"
                       + (f" ({problems})" if problems else ""))
    for index in indexes:  # Said once the split is usable (else the error above says it).
      if index.message:
        logging.warning("%s: %s", index.path, index.message)
    self.shard_sizes = shard_sizes(self.num_videos_total, process_count)
    self.first_video = sum(self.shard_sizes[:process_index])
    self.num_videos = self.shard_sizes[process_index]
    local = slice(self.first_video, self.first_video + self.num_videos)
    self._file_ids = np.concatenate(file_ids)[local]
    self._offsets = np.concatenate(offsets)[local]
    self._lengths = np.concatenate(lengths)[local]
    self._record_in_file = np.concatenate(local_positions)[local]
    self._reader = RecordReader(paths)
    self._parse = parse

  def describe(self, local_id: int) -> str:
    local_id = int(local_id)
    return (f"{self._reader.paths[self._file_ids[local_id]]} record "
            f"{self._record_in_file[local_id]}")

  def stats(self) -> dict:
    """Files of the split with a problem, by kind (`FileIndex.problem`)."""
    kinds = list(self.file_problems.values())
    return {"truncated_files": len(self.truncated_files),
            "empty_files": kinds.count("empty"),
            "not_tfrecord_files": kinds.count("not_tfrecord"),
            "corrupt_header_files": kinds.count("corrupt_header")}

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
             "label": first_label(parsed["labels"])}
    if with_frames:
      video["frames"] = parsed["frames"]
      video["num_frames"] = tf.size(parsed["frames"], out_type=tf.int32)
      video["ok"] = frame_decode.frames_look_valid(parsed["frames"])
    return video

  def frame_shape(self, video):
    return frame_decode.frame_shape(video["frames"][0])

  def read_clips(self, video, indices, boxes=None) -> tuple:
    """`(K, T)` frame indices -> (list of K `(T, h, w, 3)` uint8, ok); ok is
    False when a sampled frame is a broken JPEG (`integrity.jpeg_damage`)."""
    clips = []
    for k in range(indices.shape[0]):
      encoded = tf.gather(video["frames"], indices[k])
      clips.append(frame_decode.decode_frames(encoded, None if boxes is None else boxes[k]))
    sampled = tf.gather(video["frames"], tf.reshape(indices, [-1]))
    intact = tf.numpy_function(integrity.frames_intact, [sampled], tf.bool, stateful=False)
    return clips, tf.ensure_shape(intact, [])

  def diagnose(self, local_id: int) -> Tuple[str, str]:
    """`(kind, reason)` why video `local_id` yields no clip, found eagerly:
    kind "corrupt_record" (checksum, I/O), "corrupt_frame" (a frame that is
    not an intact JPEG/PNG or fails to decode) or "unreadable" (no frames,
    does not parse)."""
    local_id = int(local_id)
    location = (self._file_ids[local_id], self._offsets[local_id], self._lengths[local_id])
    serialized = self._reader.read(*location)
    failure = self._reader.failure(*location[:2])
    if failure:
      return "corrupt_record", failure
    try:
      frames = self._parse(tf.constant(serialized))["frames"].numpy()
    except tf.errors.OpError as error:
      return "unreadable", f"record does not parse: {_op_message(error)}"
    if not len(frames):
      return "unreadable", "record has no frames"
    for i, encoded in enumerate(frames):
      damage = integrity.jpeg_damage(encoded)
      if damage is None:
        try:
          frame_decode.decode_frame(tf.constant(encoded))
        except tf.errors.OpError as error:
          damage = f"decode error: {_op_message(error)}"
      if damage:
        return "corrupt_frame", f"frame {i} of {len(frames)}: {damage}"
    return "unreadable", "no clip decodes (every frame checks out one by one)"

  def probe(self, local_ids: Sequence[int]) -> List[dict]:
    """Eagerly reads videos: [{"label", "labels", "num_frames"}] per id."""
    found = []
    for local_id in local_ids:
      try:
        video = self.load(tf.constant(local_id, tf.int64))
      except tf.errors.OpError:  # Damaged: the pipeline skips it; diagnose() says why.
        found.append({"label": -1, "labels": [], "num_frames": 0})
        continue
      found.append({"label": int(video["label"]), "labels": video["labels"].numpy().tolist(),
                    "num_frames": int(video["num_frames"])})
    return found


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
  return RecordSource(selections, parse_sequence_example, process_index,
                      process_count, name=f"data.{key}={patterns!r}")


@register_source("tfrecord")
def tfrecord_source(config, train: bool, process_index: int, process_count: int):
  """`data.train_files` / `data.eval_files`: DMVR TFRecord globs."""
  key = "train_files" if train else "eval_files"
  return dmvr_source(config[key], key, process_index, process_count)
