"""Test helpers: real encoded videos whose pixels say which frame they are.

Frame t of an `index_video` is flat in red and green, encoding t as
R = 16 + 7 (t mod 32), G = 16 + 7 (t div 32) (so t < 1024), with a blue
ramp 32 -> 224 left to right. The levels are 7 apart, which survives JPEG,
h264 and resizing; `decode_frame_index` reads t back from any crop of a
frame, normalised or not.
"""

import io
import os
from typing import Sequence, Tuple

import av
import numpy as np
from PIL import Image

LEVEL_STEP = 7
LEVEL_BASE = 16


def index_video(num_frames: int, height: int = 48, width: int = 64) -> np.ndarray:
  """`(T, H, W, 3)` uint8 frames with the frame index in R/G, x ramp in B."""
  t = np.arange(num_frames)
  frames = np.zeros((num_frames, height, width, 3), np.uint8)
  frames[..., 0] = (LEVEL_BASE + LEVEL_STEP * (t % 32))[:, None, None]
  frames[..., 1] = (LEVEL_BASE + LEVEL_STEP * (t // 32))[:, None, None]
  frames[..., 2] = np.linspace(32, 224, width).round().astype(np.uint8)[None, None, :]
  return frames


def decode_frame_index(frames: np.ndarray) -> np.ndarray:
  """`(..., H, W, 3)` pixels on the 0..255 scale -> `(...)` frame indices."""
  means = np.asarray(frames, np.float64).mean(axis=(-3, -2))
  low = np.round((means[..., 0] - LEVEL_BASE) / LEVEL_STEP)
  high = np.round((means[..., 1] - LEVEL_BASE) / LEVEL_STEP)
  return (low + 32 * high).astype(np.int64)


def unnormalize(video: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
  """Pipeline output -> pixels on the 0..255 scale."""
  return (np.asarray(video, np.float32) * np.asarray(std) + np.asarray(mean)) * 255.0


def write_mp4(path: str, frames: np.ndarray, fps: int = 25, gop: int = 8,
              codec: str = "libx264") -> str:
  """Encodes `(T, H, W, 3)` uint8 frames as an h264 mp4 (keyframe every `gop`)."""
  with av.open(path, mode="w") as container:
    stream = container.add_stream(codec, rate=fps)
    stream.width, stream.height = frames.shape[2], frames.shape[1]
    stream.pix_fmt = "yuv420p"
    stream.codec_context.gop_size = gop
    stream.options = {"crf": "18", "preset": "ultrafast", "bf": "0"}
    for frame in frames:
      for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)
  return path


def encode_jpeg(frame: np.ndarray, quality: int = 95) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(frame).save(buffer, format="JPEG", quality=quality)
  return buffer.getvalue()


def write_dmvr_tfrecords(prefix: str, videos: Sequence[Tuple[np.ndarray, int]],
                         num_shards: int = 2) -> str:
  """Writes (frames, label) videos round-robin into `num_shards` DMVR shards;
  returns their glob pattern. Video i is named `video_{i}` in `video/filename`."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from vivit_jax.data.sources import tfrecord as dmvr  # pylint: disable=import-outside-toplevel
  writers = [tf.io.TFRecordWriter(f"{prefix}-{i:05d}-of-{num_shards:05d}")
             for i in range(num_shards)]
  for i, (frames, label) in enumerate(videos):
    record = dmvr.make_sequence_example([encode_jpeg(f) for f in frames], [label],
                                        f"class_{label}", f"video_{i}")
    writers[i % num_shards].write(record)
  for writer in writers:
    writer.close()
  return f"{prefix}-*-of-{num_shards:05d}"


def tfrecord_data_config(files: str, num_classes: int = 3, **overrides) -> dict:
  """A `data` config reading `files` (train and eval) as 4 frames (stride 2)
  of 32 x 32, unnormalised pixels; `overrides` replace any key."""
  config = dict(source="tfrecord", train_files=files, eval_files=files, num_classes=num_classes,
                num_frames=4, stride=2, image_size=32, resize_short_side=40,
                mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), probe_videos=4)
  config.update(overrides)
  return config


def write_video_list(path: str, entries: Sequence[Tuple[str, int]], comma: bool = False):
  with open(path, "w") as f:
    for video_path, label in entries:
      f.write(f"{video_path},{label}\n" if comma else f"{video_path} {label}\n")
  return path


def write_corrupt_files(directory: str, good_mp4: str) -> dict:
  """A zero-length file, random bytes, and a truncated copy of `good_mp4`."""
  paths = {name: os.path.join(directory, f"{name}.mp4")
           for name in ("empty", "garbage", "truncated")}
  open(paths["empty"], "wb").close()
  with open(paths["garbage"], "wb") as f:
    f.write(np.random.default_rng(0).bytes(5000))
  with open(good_mp4, "rb") as f:
    data = f.read()
  with open(paths["truncated"], "wb") as f:
    f.write(data[:len(data) // 3])
  return paths


def write_audio_only(path: str, seconds: float = 0.5, rate: int = 16000) -> str:
  """An AAC file (e.g. `.m4a`/`.mp4`) of silence with no video stream."""
  with av.open(path, mode="w") as container:
    stream = container.add_stream("aac", rate=rate)
    stream.layout = "mono"
    for i in range(int(seconds * rate) // 1024):
      frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                         layout="mono")
      frame.sample_rate, frame.pts = rate, i * 1024
      for packet in stream.encode(frame):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)
  return path
