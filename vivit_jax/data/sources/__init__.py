"""Where videos come from: one module per registered `data.source`.

  tfrecord    DMVR `tf.SequenceExample` TFRecords (`data.train_files` /
              `eval_files`); also the TFRecord file index and reader.
  tfds        any TFDS video dataset stored as TFRecords (`data.tfds_name`).
  video_list  video files named in a list file, decoded with PyAV.

A new source is one file with a builder registered by
`vivit_jax.data.registry.register_source(name)`, returning an object with

  name, num_videos, num_videos_total, first_video, shard_sizes
        for `describe` / logs; this process's local videos `[0, num_videos)`
        are global videos `first_video + i`; `shard_sizes[p]` videos on
        process p (use `shard_sizes(...)` below).
  load(local_id) -> dict of tensors with "label" int32, "labels" `(L,)`
        int64, "num_frames" int32 and "ok" bool (False: skipped), traced
        inside tf.data; `local_id` is a scalar int64 tensor.
  frame_shape(video) -> (height, width) of the source frames.
  read_clips(video, indices, boxes=None) -> (K clips `(T, h, w, 3)` uint8,
        ok) for `(K, T)` frame indices, cropped to the `(y, x, h, w)` boxes.
  probe(local_ids) -> [{"label", "labels", "num_frames"}], eagerly.
  describe(local_id) -> str naming the video in error messages; stats() -> dict.

Importing this package does not import TensorFlow.
"""

from typing import List

from vivit_jax.data.registry import register_source

__all__ = ["register_source", "shard_sizes"]


def shard_sizes(num_videos: int, process_count: int) -> List[int]:
  """Contiguous near-equal split: process p gets `shard_sizes[p]` videos."""
  return [(p + 1) * num_videos // process_count - p * num_videos // process_count
          for p in range(process_count)]
