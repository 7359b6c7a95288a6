"""The demo dataset: shapes in smooth, structured motion over smooth backgrounds.

Each clip holds two "carrier" shapes (square, disc, cross or diamond, soft
edged, drawn independently) that move at constant velocity in the class
direction, each at its own speed, and wrap around the frame edges, and a
smaller "bouncer" disc that moves diagonally and bounces off the walls
(label-independent), over a smooth background of two colour gratings
(wavelengths 1.5-4 frame widths) whose phases drift slowly, plus light pixel
noise (+-2 grey levels).

Classes (`num_classes`): 4 = the carriers' direction (right, left, down,
up), each carrier at one of two speeds (`SPEEDS`, slow or fast) independently
of the class; 8 = direction x speed (both carriers at the class speed).
Start positions are uniform (wrapping keeps every path legal), shapes,
colours and backgrounds are drawn independently of the class, and labels are
exactly balanced per generated chunk, so no single frame tells the class: a
model has to compare frames. Speeds are fractions of the frame size per
frame, so the motion looks the same at any `size`. Videos are
`(T, size, size, 3)` uint8.

Everything is smooth or moves rigidly, so masked and next-frame prediction
can learn it: hidden background patches follow from their neighbours and
hidden object patches from the same object at other times.

`write_demo_dataset` writes DMVR TFRecords (see `sources/tfrecord.py`);
`tfds_demo.py` serves the same videos as the TFDS builder `vivit_demo_motion`.
"""

import io
import json
import os
from typing import Iterator, Tuple

import ml_collections
import numpy as np
from PIL import Image

DIRECTIONS = ("right", "left", "down", "up")
_VELOCITY = {"right": (0, 1), "left": (0, -1), "down": (1, 0), "up": (-1, 0)}
SPEEDS = (0.02, 0.04)  # slow, fast: frame sizes per frame
NUM_CLASSES = (4, 8)
NUM_CARRIERS = 2  # shapes moving in the class direction
_MARKER = "demo_complete.json"


def class_names(num_classes: int = 4) -> Tuple[str, ...]:
  """Label names: directions (4) or `direction_slow` / `direction_fast` (8)."""
  if num_classes not in NUM_CLASSES:
    raise ValueError(f"num_classes must be 4 (directions) or 8 (direction x speed), "
                     f"got {num_classes}")
  if num_classes == 4:
    return DIRECTIONS
  return tuple(f"{d}_{s}" for d in DIRECTIONS for s in ("slow", "fast"))


def balanced_labels(rng, num_videos: int, num_classes: int) -> np.ndarray:
  """`(num_videos,)` int32, each class `num_videos // num_classes` or one more times."""
  return rng.permutation(np.arange(num_videos) % num_classes).astype(np.int32)


def _background(rng, n: int, t: int, size: int) -> np.ndarray:
  """`(n, t, size, size, 3)` float32: base colour + two drifting colour gratings."""
  grid = np.arange(size, dtype=np.float32)
  frames = np.arange(t, dtype=np.float32)
  out = np.broadcast_to(rng.uniform(80, 170, (n, 1, 1, 1, 3)).astype(np.float32),
                        (n, t, size, size, 3)).copy()
  for _ in range(2):
    wavelength = size * rng.uniform(1.5, 4.0, n)
    angle = rng.uniform(0, 2 * np.pi, n)
    ky, kx = (2 * np.pi / wavelength) * np.sin(angle), (2 * np.pi / wavelength) * np.cos(angle)
    phase = rng.uniform(0, 2 * np.pi, n)[:, None] + rng.uniform(-0.03, 0.03, n)[:, None] * frames
    # sin(a + b) = sin a cos b + cos a sin b, with a over (t, y) and b over x.
    a = (ky[:, None, None] * grid[None, None, :] + phase[:, :, None]).astype(np.float32)
    b = (kx[:, None] * grid[None, :]).astype(np.float32)
    wave = (np.sin(a)[..., None] * np.cos(b)[:, None, None, :]
            + np.cos(a)[..., None] * np.sin(b)[:, None, None, :])
    amplitude = rng.uniform(25, 60, (n, 1, 1, 1, 3)) * rng.choice([-1, 1], (n, 1, 1, 1, 3))
    out += amplitude.astype(np.float32) * wave[..., None]
  return out


def _shape_alpha(dy, dx, radius, shape) -> np.ndarray:
  """Soft (1-pixel ramp) coverage in [0, 1] of shape 0 square, 1 disc, 2 cross, 3 diamond."""
  ay, ax = np.abs(dy), np.abs(dx)
  distance = np.where(shape == 0, np.maximum(ay, ax),
                      np.where(shape == 1, np.sqrt(dy ** 2 + dx ** 2),
                               np.where(shape == 3, (ay + ax) / np.sqrt(2),
                                        np.maximum(ay, ax))))
  alpha = np.clip(radius - distance + 0.5, 0, 1)
  bar = np.clip(radius / 3 - np.minimum(ay, ax) + 0.5, 0, 1)
  return np.where(shape == 2, np.minimum(alpha, bar), alpha)


def _bounce(position, low, high):
  """Reflects positions into `[low, high]` (a triangle wave)."""
  span = high - low
  q = np.mod(position - low, 2 * span)
  return low + span - np.abs(q - span)


def generate_videos(num_videos: int, num_frames: int = 16, size: int = 32,
                    num_classes: int = 4, seed=0) -> Tuple[np.ndarray, np.ndarray]:
  """`(N, T, size, size, 3)` uint8 videos and `(N,)` int32 labels (module docstring)."""
  class_names(num_classes)
  rng = np.random.default_rng(seed)
  n, t = num_videos, num_frames
  labels = balanced_labels(rng, n, num_classes)
  direction = labels if num_classes == 4 else labels // 2
  velocity = np.array([_VELOCITY[DIRECTIONS[d]] for d in direction], np.float32)  # (n, 2)
  if num_classes == 4:
    fast = rng.integers(0, 2, (n, NUM_CARRIERS))
  else:
    fast = np.repeat((labels % 2)[:, None], NUM_CARRIERS, axis=1)
  speed = np.asarray(SPEEDS, np.float32)[fast] * size  # (n, 2) pixels per frame
  frames = np.arange(t, dtype=np.float32)
  videos = _background(rng, n, t, size)

  def paint(centres, radius, shape, colour):
    """Blends one shape per clip into `videos`, over a window around its
    centre `(n, t, 2)`; window pixels wrap around the frame edges."""
    half = int(np.ceil(radius.max())) + 1
    offsets = np.arange(-half, half + 1)
    base = np.floor(centres).astype(np.int64)  # (n, t, 2)
    rows = np.mod(base[..., 0, None] + offsets, size)  # (n, t, W)
    cols = np.mod(base[..., 1, None] + offsets, size)
    dy = (base[..., 0, None] + offsets + 0.5 - centres[..., 0, None]).astype(np.float32)
    dx = (base[..., 1, None] + offsets + 0.5 - centres[..., 1, None]).astype(np.float32)
    alpha = _shape_alpha(dy[..., :, None], dx[..., None, :], radius[:, None, None, None],
                         shape[:, None, None, None])[..., None]  # (n, t, W, W, 1)
    index = (np.arange(n)[:, None, None, None], np.arange(t)[None, :, None, None],
             rows[..., :, None], cols[..., None, :])
    window = videos[index]
    videos[index] = window + alpha * (colour[:, None, None, None, :] - window)

  for k in range(NUM_CARRIERS):  # the class direction, wrapping
    start = rng.uniform(0, size, (n, 2)).astype(np.float32)
    centres = start[:, None, :] + velocity[:, None, :] * (speed[:, k, None, None]
                                                          * frames[None, :, None])
    paint(np.mod(centres, size), rng.uniform(size / 12, size / 8, n).astype(np.float32),
          rng.integers(0, 4, n), rng.uniform(0, 255, (n, 3)).astype(np.float32))
  radius = np.full(n, size / 20, np.float32)
  low, high = radius[:, None, None] + 0.5, size - radius[:, None, None] - 0.5
  start = rng.uniform(low[:, 0], high[:, 0], (n, 2)).astype(np.float32)
  diagonal = rng.choice([-1.0, 1.0], (n, 2)).astype(np.float32)
  bouncer_speed = rng.uniform(SPEEDS[0], SPEEDS[1] * 1.5, n).astype(np.float32) * size
  centres = start[:, None, :] + (diagonal * bouncer_speed[:, None])[:, None, :] * frames[None, :, None]
  paint(_bounce(centres, low, high), radius, np.ones(n, np.int64),
        rng.uniform(0, 255, (n, 3)).astype(np.float32))
  videos += rng.uniform(-2, 2, videos.shape).astype(np.float32)  # light noise
  return np.clip(np.rint(videos), 0, 255).astype(np.uint8), labels


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
        [encode_jpeg(frame) for frame in video], [label], class_names(settings["num_classes"])[label],
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


def write_label_subset(train_files: str, num_videos: int, out_path: str) -> str:
  """Copies the first `num_videos` records of the `train_files` glob (shards
  in name order) to one TFRecord file: a scarce-label training set drawn
  from the same clips. A no-op when `out_path` exists; returns it."""
  import glob  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  if os.path.exists(out_path):
    return out_path
  shards = sorted(glob.glob(train_files))
  if not shards:
    raise FileNotFoundError(f"no files match {train_files!r}; write the dataset first")
  count = 0
  with tf.io.TFRecordWriter(out_path + ".tmp") as writer:
    for record in tf.data.TFRecordDataset(shards).take(num_videos):
      writer.write(record.numpy())
      count += 1
  if count < num_videos:
    raise ValueError(f"{train_files!r} holds {count} records, fewer than {num_videos}")
  os.replace(out_path + ".tmp", out_path)
  return out_path


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
