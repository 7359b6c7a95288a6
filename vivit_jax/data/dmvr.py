"""The DMVR TFRecord layout used by scenic's ViViT: one video per record.

A record is a serialised `tf.train.SequenceExample` with
  context  `clip/label/index`  int64 list (first = the class; all = multi-label)
           `clip/label/text`   bytes (class name, optional)
           `video/filename`    bytes (source file, optional)
  features `image/encoded`     one encoded JPEG (or PNG) per frame, in order.
"""

from typing import Optional, Sequence

import tensorflow as tf

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
