"""Helpers shared by the predict / stream tests: a tiny checkpoint and mp4s.

No tests here; `test_predict.py` and `test_stream.py` import these.
"""

import os

import av
import jax
import jax.numpy as jnp
import numpy as np

from vivit_jax import checkpoints
from vivit_jax.models import build_model

LABELS = ["walk", "run", "jump", "sit", "wave"]
MODEL = dict(name="vivit", variant="spatio_temporal", num_classes=len(LABELS), hidden_size=32,
             num_layers=1, num_heads=2, mlp_dim=64, patch_size=8, tubelet_size=2)
INPUT = dict(num_frames=8, frame_stride=2, image_size=[32, 32], resize_short_side=36,
             mean=[0.45, 0.45, 0.45], std=[0.225, 0.225, 0.225])


def frame_pattern(index: int, height: int, width: int) -> np.ndarray:
  """`(H, W, 3)` uint8: a flat grey level that encodes `index` (6 levels
  apart, so it survives lossy coding) and a moving bright square."""
  frame = np.full((height, width, 3), (index * 6) % 240, np.uint8)
  x = (index * 3) % max(width - 8, 1)
  frame[height // 4: height // 4 + 8, x: x + 8] = (250, 40, 40)
  return frame


def frame_index(frame: np.ndarray) -> int:
  """Inverse of `frame_pattern` for index < 40 (reads the corner)."""
  return int(round(float(np.median(frame[-6:, -6:, :])) / 6))


def write_video(path: str, num_frames: int = 40, height: int = 48, width: int = 64,
                fps: int = 25, faststart: bool = False) -> str:
  """An H.264 (yuv420p) mp4 of `frame_pattern` frames; `faststart` puts the
  index (moov) before the frames, so a truncated copy still opens."""
  options = {"movflags": "faststart"} if faststart else {}
  with av.open(path, "w", options=options) as container:
    stream = container.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.options = {"crf": "10", "g": "12"}
    for i in range(num_frames):
      frame = av.VideoFrame.from_ndarray(frame_pattern(i, height, width), format="rgb24")
      for packet in stream.encode(frame):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)
  return path


def make_checkpoint(directory: str, with_input: bool = True, labels=LABELS) -> str:
  """A randomly initialised `MODEL` saved as a model checkpoint."""
  model = build_model(MODEL)
  h, w = INPUT["image_size"]
  video = jnp.zeros((1, INPUT["num_frames"], h, w, 3))
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), video)["params"]
  # Random normal weights everywhere (a fresh init's zero head would give
  # uniform outputs), drawn with numpy: no compilation, seconds faster.
  rng = np.random.default_rng(1)
  params = jax.tree_util.tree_map(
      lambda x: rng.normal(0, 0.5, x.shape).astype(np.float32), shapes)
  config = {"model": dict(MODEL), "labels": labels, "source": {"format": "test"}}
  if with_input:
    config["input"] = dict(INPUT)
  else:
    config["source"].update(num_frames=INPUT["num_frames"], image_size=INPUT["image_size"])
  return checkpoints.save_model_checkpoint(directory, params, config)


def corrupt_files(directory: str, good_video: str) -> dict:
  """`{"random": path, "truncated": path, "empty": path}` of undecodable files."""
  paths = {name: os.path.join(directory, f"{name}.mp4") for name in ("random", "truncated", "empty")}
  with open(paths["random"], "wb") as f:
    f.write(np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes())
  with open(good_video, "rb") as f:
    data = f.read()
  with open(paths["truncated"], "wb") as f:
    f.write(data[: len(data) // 3])
  open(paths["empty"], "wb").close()
  return paths
