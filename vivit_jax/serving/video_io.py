"""Video input via PyAV: whole files (seek + decode only the frames a clip
needs) and live sources (files, URLs, capture devices) frame by frame.

Frames are uint8 RGB, `(H, W, 3)` one at a time or `(T, H, W, 3)` stacked.
Frame `i` of a file is the frame whose timestamp is nearest `i / fps` after
the stream start (`vivit_jax.data.pyav_decode`, which this module reuses for
random access). Every failure is a `VideoDecodeError` whose one-line
message starts with the file, URL or device it is about.

PyAV is imported when a video is first opened, not with this module: the
serving commands import on the GPU image, which has no PyAV.
"""

import dataclasses
import os
import re
from typing import Dict, Iterator, Mapping, Optional, Sequence, Tuple

import numpy as np

from vivit_jax.data import pyav_decode
from vivit_jax.data.pyav_decode import VideoDecodeError


def _decode_errors() -> tuple:
  """Errors PyAV / FFmpeg raise for unreadable input (av.FFmpegError is an OSError)."""
  import av  # pylint: disable=import-outside-toplevel
  return (OSError, ValueError, EOFError, IndexError, RuntimeError, av.FFmpegError)


_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_DEVICE = re.compile(r"^/dev/video\d+$")


@dataclasses.dataclass(frozen=True)
class VideoInfo:
  """What a video file's headers (or its packets) say.

  Attributes:
    num_frames: frames in the first video stream.
    fps: frames per second (average rate).
    height, width: frame size in pixels.
  """
  num_frames: int
  fps: float
  height: int
  width: int


def _one_line(path: str, error: BaseException) -> str:
  """`"PATH: why"` on one line (FFmpeg's errno text without the repeated path)."""
  message = getattr(error, "strerror", None)
  message = " ".join(str(message or error).split()) or type(error).__name__
  return message if message.startswith(str(path)) else f"{path}: {message}"


def _check_file(path: str) -> None:
  if not os.path.exists(path):
    raise VideoDecodeError(f"{path}: no such file")
  if os.path.isdir(path):
    raise VideoDecodeError(f"{path}: is a directory, not a video file")
  if os.path.getsize(path) == 0:
    raise VideoDecodeError(f"{path}: empty file (0 bytes)")


def probe(path: str) -> VideoInfo:
  """Frame count, frame rate and size of the video file at `path`."""
  _check_file(path)
  import av  # pylint: disable=import-outside-toplevel
  try:
    num_frames, height, width = pyav_decode.probe(path)
    with av.open(path) as container:
      stream = container.streams.video[0]
      rate = stream.average_rate or stream.guessed_rate or stream.base_rate
  except VideoDecodeError as e:
    raise VideoDecodeError(_one_line(path, e)) from None
  except _decode_errors() as e:
    raise VideoDecodeError(_one_line(path, e)) from None
  if not rate:
    raise VideoDecodeError(f"{path}: unknown frame rate")
  return VideoInfo(num_frames, float(rate), height, width)


def read_frames(path: str, indices: Sequence[int]) -> np.ndarray:
  """`(len(indices), H, W, 3)` uint8 frames at `indices` (any order, repeats
  allowed); seeks to the keyframe before the first and stops after the last.
  Indices past a truncated end get the last decodable frame."""
  _check_file(path)
  try:
    return pyav_decode.decode_frames(path, indices)
  except VideoDecodeError as e:
    raise VideoDecodeError(_one_line(path, e)) from None
  except _decode_errors() as e:
    raise VideoDecodeError(_one_line(path, e)) from None


def source_kind(source: str) -> str:
  """"device" (`/dev/videoN`), "url" (`scheme://...`) or "file"."""
  if _DEVICE.match(source):
    return "device"
  if _URL.match(source) and not source.startswith("file://"):
    return "url"
  return "file"


def open_options(source: str, input_format: Optional[str] = None,
                 options: Optional[Mapping[str, str]] = None) -> Tuple[Optional[str], Dict[str, str]]:
  """`(format, options)` for `av.open`: v4l2 for `/dev/videoN`, RTSP over TCP
  (more robust than UDP through NATs) unless `options` say otherwise."""
  kind = source_kind(source)
  options = dict(options or {})
  if input_format is None and kind == "device":
    input_format = "v4l2"
  if kind == "url" and source.lower().startswith("rtsp://"):
    options.setdefault("rtsp_transport", "tcp")
  return input_format, options


class LiveSource:
  """Frames of a file, URL or device, decoded in order as they arrive.

      with LiveSource("rtsp://camera/stream") as source:
        for index, seconds, frame in source.frames():  # frame: (H, W, 3) uint8
          ...

  `index` counts decoded frames from 0; `seconds` is the frame's
  presentation time from the stream start (index / fps without timestamps).
  Attributes after opening: `fps` (None when the source does not say),
  `kind` ("file", "url" or "device"), `frames_announced` (the frame count
  the container states, None when it states none). After `frames()` ends:
  `error`, the one-line reason when decoding broke off after some frames
  (a truncated file, a dropped connection, a file that gives fewer frames
  than it announces), else None.
  """

  def __init__(self, source: str, input_format: Optional[str] = None,
               options: Optional[Mapping[str, str]] = None):
    self.source = source.replace("file://", "", 1) if source.startswith("file://") else source
    self.kind = source_kind(self.source)
    self._format, self._options = open_options(self.source, input_format, options)
    self._container = None
    self._stream = None
    self.fps: Optional[float] = None
    self.frames_announced: Optional[int] = None
    self.error: Optional[str] = None

  def open(self) -> "LiveSource":
    if self.kind == "file":
      _check_file(self.source)
    import av  # pylint: disable=import-outside-toplevel
    try:
      self._container = av.open(self.source, format=self._format, options=self._options)
      if not self._container.streams.video:
        raise VideoDecodeError(f"{self.source}: no video stream")
      self._stream = self._container.streams.video[0]
      self._stream.thread_type = "AUTO"
      rate = self._stream.average_rate or self._stream.guessed_rate or self._stream.base_rate
    except VideoDecodeError:
      self.close()
      raise
    except _decode_errors() as e:
      self.close()
      raise VideoDecodeError(_one_line(self.source, e)) from None
    self.fps = float(rate) if rate else None
    self.frames_announced = int(self._stream.frames) or None
    return self

  def frames(self) -> Iterator[Tuple[int, float, np.ndarray]]:
    """Yields `(index, seconds, frame (H, W, 3) uint8)` until the source ends."""
    if self._container is None:
      self.open()
    fps = self.fps or 25.0
    start_pts = self._stream.start_time or 0
    time_base = float(self._stream.time_base) if self._stream.time_base else None
    index = 0
    try:
      for frame in self._container.decode(self._stream):
        if frame.pts is not None and time_base:
          seconds = (frame.pts - start_pts) * time_base
        else:
          seconds = index / fps
        yield index, seconds, frame.to_ndarray(format="rgb24")
        index += 1
    except _decode_errors() as e:
      if index == 0:
        raise VideoDecodeError(_one_line(self.source, e)) from None
      # A stream that breaks off after some frames ends there (a truncated
      # file, a dropped connection): what was decoded stands, `error` says why.
      self.error = _one_line(self.source, e)
    if index == 0:
      raise VideoDecodeError(f"{self.source}: decoded no frames")
    if (self.error is None and self.kind == "file" and self.frames_announced
        and index < self.frames_announced):
      # Threaded decoding ends a broken-off file without an exception.
      self.error = f"{self.source}: file ends early (truncated or damaged)"

  def close(self) -> None:
    if self._container is not None:
      self._container.close()
      self._container = None

  def __enter__(self) -> "LiveSource":
    return self.open()

  def __exit__(self, *exc) -> None:
    self.close()
