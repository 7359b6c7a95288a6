"""Which source frames the temporal views of an evaluated video take. NumPy only.

The one formula for evaluation-time frame sampling: the TF input pipeline
(`sampling.eval_clips`, through `tf.numpy_function`) and serving
(`vivit_jax.serving`, with no TensorFlow) both call `view_indices`, so a
video is sampled the same way in training-time eval, `evaluate`, `predict`
and `export`ed serving.
"""

import numpy as np

SAMPLINGS = ("random", "segment")


def clip_span(num_frames: int, stride: int) -> int:
  """Source frames covered by a strided clip, first to last inclusive."""
  return (int(num_frames) - 1) * int(stride) + 1


def view_indices(num_source_frames: int, num_frames: int, stride: int, num_views: int = 1,
                 sampling: str = "random") -> np.ndarray:
  """`(num_views, T)` int32 frame indices of evenly spread temporal views.

  "random" (strided clips): windows `start + stride * t` whose starts spread
  evenly from the first to the last valid start (one view: the centre
  window). "segment" (TSN test sampling): view k takes the frame at fraction
  `(k + 0.5) / num_views` of each of T equal segments. Indices are clamped to
  the last frame, so a video shorter than a clip repeats its last frame.
  """
  if sampling not in SAMPLINGS:
    raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
  n, t, v = int(num_source_frames), int(num_frames), int(num_views)
  if sampling == "segment":
    fractions = (np.arange(v, dtype=np.float32) + np.float32(0.5)) / np.float32(v)
    positions = ((np.arange(t, dtype=np.float32)[None, :] + fractions[:, None])
                 * np.float32(n) / np.float32(t))
    indices = np.floor(positions).astype(np.int64)
  else:
    max_start = max(n - clip_span(t, stride), 0)
    if v == 1:
      starts = np.array([max_start // 2], np.int64)
    else:
      spread = np.float32(max_start) / np.float32(v - 1)
      starts = np.round(np.arange(v, dtype=np.float32) * spread).astype(np.int64)
    indices = starts[:, None] + int(stride) * np.arange(t, dtype=np.int64)[None, :]
  return np.clip(indices, 0, max(n - 1, 0)).astype(np.int32)
