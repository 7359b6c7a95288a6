"""Decoding encoded frames (JPEG, or PNG as some TFDS datasets store them).

JPEG frames go through `tf.io.decode_and_crop_jpeg`, which decodes only the
crop window's blocks; PNG frames are decoded whole and then cropped.
"""

import tensorflow as tf

_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PN"


def _is_jpeg(encoded):
  return tf.equal(tf.strings.substr(encoded, 0, 3), _JPEG_MAGIC)


def frames_look_valid(encoded_frames):
  """True if `(N,)` frames are non-empty, N > 0, and each is a JPEG or PNG.

  Catches empty and zero-length data cheaply; damage inside a frame shows up
  as a decode error, which the pipeline skips and counts.
  """
  prefixes = tf.strings.substr(encoded_frames, 0, 3)
  known = tf.logical_or(tf.equal(prefixes, _JPEG_MAGIC), tf.equal(prefixes, _PNG_MAGIC))
  return tf.logical_and(tf.size(encoded_frames) > 0, tf.reduce_all(known))


def frame_shape(encoded):
  """`(height, width)` int32 of one encoded frame (JPEG: header only)."""
  shape = tf.cond(
      _is_jpeg(encoded),
      lambda: tf.image.extract_jpeg_shape(encoded),
      lambda: tf.shape(tf.io.decode_image(encoded, channels=3, expand_animations=False)))
  return shape[0], shape[1]


def decode_frame(encoded, box=None):
  """One frame -> `(h, w, 3)` uint8: the `(y, x, h, w)` window, or all of it."""
  if box is None:
    return tf.io.decode_image(encoded, channels=3, expand_animations=False)

  def whole_then_crop():
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    return image[box[0]:box[0] + box[2], box[1]:box[1] + box[3], :]

  return tf.cond(
      _is_jpeg(encoded),
      lambda: tf.io.decode_and_crop_jpeg(encoded, box, channels=3,
                                         dct_method="INTEGER_FAST"),
      whole_then_crop)


def decode_frames(encoded_frames, box=None):
  """`(T,)` encoded frames -> `(T, h, w, 3)` uint8, all with the same window."""
  return tf.map_fn(lambda encoded: decode_frame(encoded, box), encoded_frames,
                   fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8),
                   # Eagerly (the start-up probe) there is nothing to parallelise.
                   parallel_iterations=None if tf.executing_eagerly() else 4)
