"""Video files via PyAV: frame counts, and decoding only the frames a clip needs.

`decode_frames` seeks to the keyframe at or before the first wanted frame,
decodes forward and stops after the last wanted frame, so a 16-frame clip
from a long video costs one GOP of extra decoding rather than the whole file.
Frame `i` is the frame whose timestamp is nearest `i / fps` after the stream
start (exact for constant frame rate, the norm for datasets).

PyAV is imported by the two functions that open files, so `VideoDecodeError`
(and `vivit_jax.serving.video_io`, which re-exports it) import without PyAV.
"""

from typing import Sequence, Tuple

import numpy as np


# Decoder threads per stream: 0 keeps FFmpeg's single-threaded default (the
# pipeline already decodes one video per tf.data worker); N > 0 turns on
# frame + slice threading with N threads (docs/data.md measures both).
DECODE_THREADS = 0


class VideoDecodeError(RuntimeError):
  """A video file that cannot be opened or yields no frames."""


def _video_stream(container, path):
  if not container.streams.video:
    raise VideoDecodeError(f"{path}: no video stream")
  return container.streams.video[0]


def _frame_rate(stream) -> float:
  rate = stream.average_rate or stream.guessed_rate or stream.base_rate
  if not rate:
    raise VideoDecodeError("unknown frame rate")
  return float(rate)


def probe(path: str) -> Tuple[int, int, int]:
  """`(num_frames, height, width)` of the first video stream, from headers
  when they say (mp4 always does), else by counting packets (no decoding)."""
  import av  # pylint: disable=import-outside-toplevel
  with av.open(path) as container:
    stream = _video_stream(container, path)
    height, width = stream.codec_context.height, stream.codec_context.width
    num_frames = stream.frames
    if not num_frames:
      num_frames = sum(1 for packet in container.demux(stream) if packet.size)
  if num_frames <= 0 or height <= 0 or width <= 0:
    raise VideoDecodeError(f"{path}: no frames (frames={num_frames}, {height}x{width})")
  return int(num_frames), int(height), int(width)


def decode_frames(path: str, indices: Sequence[int]) -> np.ndarray:
  """`(len(indices), H, W, 3)` uint8 RGB frames at `indices` (any order,
  repeats allowed). Indices past the real end get the last decoded frame."""
  import av  # pylint: disable=import-outside-toplevel
  indices = [int(i) for i in indices]
  wanted = sorted(set(indices))
  first, last = wanted[0], wanted[-1]
  decoded = {}
  with av.open(path) as container:
    stream = _video_stream(container, path)
    if DECODE_THREADS > 0:
      stream.thread_type = "AUTO"
      stream.codec_context.thread_count = DECODE_THREADS
    fps = _frame_rate(stream)
    time_base = float(stream.time_base)
    start_pts = stream.start_time or 0
    if first > 0:
      target = start_pts + int(first / fps / time_base)
      container.seek(target, stream=stream, backward=True, any_frame=False)
    previous_index = -1
    for frame in container.decode(stream):
      if frame.pts is None:
        index = previous_index + 1
      else:
        index = int(round((frame.pts - start_pts) * time_base * fps))
      previous_index = index
      if index in wanted and index not in decoded:
        decoded[index] = frame.to_ndarray(format="rgb24")
      if index >= last:
        break
  if not decoded:
    raise VideoDecodeError(f"{path}: decoded no frames at indices {first}..{last}")
  available = sorted(decoded)
  frames = []
  for index in indices:
    # Headers can overstate the length by a frame or two: reuse the nearest
    # earlier frame (or the first one) rather than failing the video.
    position = np.searchsorted(available, index, side="right") - 1
    frames.append(decoded[available[max(position, 0)]])
  return np.stack(frames)
