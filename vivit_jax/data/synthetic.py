"""The demo dataset: a shape moving over a textured, noisy background.

The class is the direction of motion (4 classes: right, left, down, up; or 8
with the diagonals). Start position, shape (square, disc, cross), colour,
size and speed are random and the background is a fresh random texture per
video, so no single frame tells the class: a model has to compare frames.
Videos are `(T, size, size, 3)` uint8; defaults (16 frames at 32x32) keep
the demo trainable on a 2-core CPU in minutes.

`write_demo_dataset` writes DMVR TFRecords (see `sources/tfrecord.py`); `tfds_demo.py`
serves the same videos as the TFDS builder `vivit_demo_motion`.
"""

import io
import json
import os
from typing import Iterator, Tuple

import ml_collections
import numpy as np
from PIL import Image

DIRECTIONS = ("right", "left", "down", "up", "down_right", "up_left", "down_left", "up_right")
_VELOCITY = {"right": (0, 1), "left": (0, -1), "down": (1, 0), "up": (-1, 0),
             "down_right": (1, 1), "up_left": (-1, -1), "down_left": (1, -1),
             "up_right": (-1, 1)}
_MARKER = "demo_complete.json"


def generate_videos(num_videos: int, num_frames: int = 16, size: int = 32,
                    num_classes: int = 4, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
  """`(N, T, size, size, 3)` uint8 videos and `(N,)` int32 labels."""
  if num_classes not in (4, 8):
    raise ValueError(f"num_classes must be 4 or 8 (motion directions), got {num_classes}")
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, num_classes, num_videos).astype(np.int32)
  velocity = np.array([_VELOCITY[DIRECTIONS[label]] for label in labels], np.float32)
  speed = rng.uniform(0.6, 1.0, num_videos) * (size / 2) / max(num_frames - 1, 1)
  radius = rng.uniform(size / 10, size / 6, num_videos)
  travel = speed * (num_frames - 1)
  low, high = radius + 1, size - radius - 1 - travel[:]
  # Starts chosen so the whole path stays inside the frame.
  start = np.stack([np.where(velocity[:, i] > 0, rng.uniform(low, high),
                             np.where(velocity[:, i] < 0, rng.uniform(low + travel, size - low),
                                      rng.uniform(low, size - low)))
                    for i in range(2)], axis=1)
  t = np.arange(num_frames, dtype=np.float32)
  centres = start[:, None, :] + velocity[:, None, :] * (speed[:, None] * t)[:, :, None]

  coarse = rng.integers(50, 204, (num_videos, 1, size // 4 + 1, size // 4 + 1, 3),
                        dtype=np.int16)
  background = np.repeat(np.repeat(coarse, 4, axis=2), 4, axis=3)[:, :, :size, :size]
  videos = rng.integers(-20, 21, (num_videos, num_frames, size, size, 3), dtype=np.int16)
  videos += background

  centres = centres.astype(np.float32)
  grid = np.arange(size, dtype=np.float32) + 0.5
  dy = grid[None, None, :, None] - centres[:, :, 0, None, None]
  dx = grid[None, None, None, :] - centres[:, :, 1, None, None]
  r = radius.astype(np.float32)[:, None, None, None]
  shape = rng.integers(0, 3, num_videos)[:, None, None, None]
  square = np.maximum(abs(dy), abs(dx)) <= r
  disc = dy ** 2 + dx ** 2 <= r ** 2
  cross = np.minimum(abs(dy), abs(dx)) <= r / 3
  cross &= np.maximum(abs(dy), abs(dx)) <= r
  mask = np.where(shape == 0, square, np.where(shape == 1, disc, cross))
  colour = rng.integers(0, 256, (num_videos, 1, 1, 1, 3), dtype=np.int16)
  videos = np.where(mask[..., None], colour, videos)
  return np.clip(videos, 0, 255, out=videos).astype(np.uint8), labels


def iterate_demo_videos(num_videos: int, num_frames: int, size: int, num_classes: int,
                        seed: int) -> Iterator[Tuple[np.ndarray, int]]:
  """Yields `(video (T, size, size, 3) uint8, label)`, generated in chunks of
  about 4M pixels to bound memory."""
  chunk = max(1, 2**22 // (num_frames * size * size))
  for first in range(0, num_videos, chunk):
    count = min(chunk, num_videos - first)
    videos, labels = generate_videos(count, num_frames, size, num_classes,
                                     seed=(seed, first))
    yield from zip(videos, labels.tolist())


def encode_jpeg(frame: np.ndarray, quality: int = 95) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(frame).save(buffer, format="JPEG", quality=quality)
  return buffer.getvalue()


def _write_split(prefix: str, num_shards: int, num_videos: int, settings: dict, seed: int):
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from vivit_jax.data.sources import tfrecord as dmvr  # pylint: disable=import-outside-toplevel
  paths = [f"{prefix}-{i:05d}-of-{num_shards:05d}.tfrecord" for i in range(num_shards)]
  writers = [tf.io.TFRecordWriter(path + ".tmp") for path in paths]
  videos = iterate_demo_videos(num_videos, settings["num_frames"], settings["size"],
                               settings["num_classes"], seed)
  for index, (video, label) in enumerate(videos):
    record = dmvr.make_sequence_example(
        [encode_jpeg(frame) for frame in video], [label], DIRECTIONS[label],
        f"demo_{os.path.basename(prefix)}_{index:06d}")
    writers[index % num_shards].write(record)
  for writer, path in zip(writers, paths):
    writer.close()
    os.replace(path + ".tmp", path)
  return f"{prefix}-*-of-{num_shards:05d}.tfrecord"


def write_demo_dataset(out_dir: str, num_train: int = 1024, num_eval: int = 256,
                       num_frames: int = 16, size: int = 32, num_classes: int = 4,
                       seed: int = 0, num_train_shards: int = 4,
                       num_eval_shards: int = 1) -> dict:
  """Writes train / eval DMVR TFRecords under `out_dir`; a no-op if a complete
  dataset with the same settings is already there.

  Returns {"train_files", "eval_files" (glob patterns), "num_classes",
  "num_frames", "size", "num_train", "num_eval"}.
  """
  settings = dict(num_train=num_train, num_eval=num_eval, num_frames=num_frames, size=size,
                  num_classes=num_classes, seed=seed, num_train_shards=num_train_shards,
                  num_eval_shards=num_eval_shards)
  marker = os.path.join(out_dir, _MARKER)
  if os.path.exists(marker):
    with open(marker) as f:
      written = json.load(f)
    if written.get("settings") == settings:
      return written["result"]
  os.makedirs(out_dir, exist_ok=True)
  result = dict(num_classes=num_classes, num_frames=num_frames, size=size,
                num_train=num_train, num_eval=num_eval)
  # Distinct seeds keep the eval videos out of the training set.
  result["train_files"] = _write_split(os.path.join(out_dir, "train"), num_train_shards,
                                       num_train, settings, seed=2 * seed)
  result["eval_files"] = _write_split(os.path.join(out_dir, "eval"), num_eval_shards,
                                      num_eval, settings, seed=2 * seed + 1)
  with open(marker + ".tmp", "w") as f:
    json.dump({"settings": settings, "result": result}, f, indent=1)
  os.replace(marker + ".tmp", marker)
  return result


def demo_data_config(dataset: dict, **overrides) -> ml_collections.ConfigDict:
  """Data config for a `write_demo_dataset` result: whole frames, no flip
  (it would swap left and right), stride 1 over all frames."""
  from vivit_jax.data import config as config_lib  # pylint: disable=import-outside-toplevel
  settings = dict(source="tfrecord", train_files=dataset["train_files"],
                  eval_files=dataset["eval_files"], num_classes=dataset["num_classes"],
                  num_frames=dataset["num_frames"], stride=1, image_size=dataset["size"],
                  resize_short_side=dataset["size"], crop="random", flip=False,
                  mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
  settings.update(overrides)
  return config_lib.resolve_data_config(settings)
