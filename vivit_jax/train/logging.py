"""What a user sees of a run: console progress, TensorBoard, config.json, PNGs.

Only process 0 writes anything (`is_writer()`); on other processes every
writer here is a no-op, so the training loop calls them unconditionally.

  MetricWriter       scalars and images as TensorBoard event files
                     (tensorboardX, no TensorFlow) under `WORKDIR/tensorboard`.
  Progress           one console line per logging interval: step, loss,
                     learning rate, clips/s and ETA.
  write_config_json  the resolved config, as `WORKDIR/config.json`.
  reconstruction_grid / write_png
                     original / masked / reconstructed frames of a masked
                     autoencoder as one uint8 image.
"""

import json
import os
import sys
import time
from typing import Any, Dict, Mapping, Optional

import jax
import numpy as np

TENSORBOARD_DIR = "tensorboard"
IMAGES_DIR = "images"
CONFIG_JSON = "config.json"


def is_writer() -> bool:
  """True on the one process that writes logs (process 0)."""
  return jax.process_index() == 0


def console(message: str) -> None:
  """Prints `message` on process 0, flushed at once (logs are often piped)."""
  if is_writer():
    print(message, flush=True)


def warn(message: str) -> None:
  """Prints a warning to stderr on every process (it may concern that host)."""
  print(f"WARNING: {message}", file=sys.stderr, flush=True)


def _json_default(value):
  if isinstance(value, (np.integer, np.floating)):
    return value.item()
  if isinstance(value, np.ndarray):
    return value.tolist()
  return str(value)


def write_config_json(workdir: str, config, filename: str = CONFIG_JSON) -> Optional[str]:
  """Writes the resolved config to `WORKDIR/<filename>`; returns its path."""
  if not is_writer():
    return None
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, filename)
  data = config.to_dict() if hasattr(config, "to_dict") else dict(config)
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(data, f, indent=2, sort_keys=True, default=_json_default)
  os.replace(tmp, path)
  return path


class MetricWriter:
  """TensorBoard event files in `WORKDIR/tensorboard` (process 0 only).

  `purge_step`: when resuming from step S, events already written for steps
  > S by the interrupted run are hidden by TensorBoard (pass S + 1).
  """

  def __init__(self, workdir: str, purge_step: Optional[int] = None):
    self._writer = None
    if is_writer():
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      self._writer = SummaryWriter(os.path.join(workdir, TENSORBOARD_DIR),
                                   purge_step=purge_step, flush_secs=30)
    self.workdir = workdir

  def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
    if self._writer is None:
      return
    for name, value in scalars.items():
      self._writer.add_scalar(name, float(value), global_step=int(step))

  def write_image(self, step: int, name: str, image: np.ndarray) -> None:
    """`image`: `(H, W, 3)` uint8."""
    if self._writer is None:
      return
    self._writer.add_image(name, np.asarray(image), global_step=int(step),
                           dataformats="HWC")

  def flush(self) -> None:
    if self._writer is not None:
      self._writer.flush()

  def close(self) -> None:
    if self._writer is not None:
      self._writer.close()
      self._writer = None


def _format_duration(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  hours, rest = divmod(seconds, 3600)
  minutes, secs = divmod(rest, 60)
  return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
  """Console progress: one line per call to `report`, with throughput and ETA.

  Throughput (clips/s over the whole global batch) and ETA are measured
  between consecutive reports, so the first report after start or resume
  (which includes compilation) is excluded from the ETA.
  """

  def __init__(self, total_steps: int, global_batch_size: int, start_step: int = 0):
    self.total_steps = int(total_steps)
    self.global_batch_size = int(global_batch_size)
    self._last_step = int(start_step)
    self._last_time = time.perf_counter()
    self._steps_per_sec = None

  def report(self, step: int, metrics: Mapping[str, float]) -> Dict[str, float]:
    """Prints a progress line for `step`; returns the throughput scalars."""
    now = time.perf_counter()
    steps = step - self._last_step
    elapsed = max(now - self._last_time, 1e-9)
    rate = steps / elapsed if steps > 0 else 0.0
    first = self._steps_per_sec is None
    self._steps_per_sec = rate
    self._last_step, self._last_time = step, now
    clips_per_sec = rate * self.global_batch_size
    remaining = self.total_steps - step
    eta = "?" if first or rate <= 0 else _format_duration(remaining / rate)
    parts = [f"step {step:>6d}/{self.total_steps}"]
    for name in ("loss", "accuracy", "learning_rate", "grad_norm"):
      if name in metrics:
        value = float(metrics[name])
        parts.append(f"{'lr' if name == 'learning_rate' else name} "
                     + (f"{value:.3e}" if name == "learning_rate" else f"{value:.4f}"))
    parts.append(f"{clips_per_sec:7.1f} clips/s")
    parts.append(f"ETA {eta}")
    console(" | ".join(parts))
    return {"throughput/clips_per_sec": clips_per_sec, "throughput/steps_per_sec": rate}


def _to_uint8(frames: np.ndarray) -> np.ndarray:
  return (np.clip(np.asarray(frames, np.float32), 0.0, 1.0) * 255).round().astype(np.uint8)


def reconstruction_grid(original: np.ndarray, masked: np.ndarray,
                        reconstructed: np.ndarray, gap: int = 2,
                        min_frame_size: int = 96) -> np.ndarray:
  """One image: rows original / masked / reconstructed, columns the frames.

  Args:
    original, masked, reconstructed: `(T, H, W, C)` float in [0, 1] (values
      outside are clipped), C = 3 (or 1, repeated to RGB).
    gap: white pixels between frames and rows.
    min_frame_size: frames smaller than this are upscaled (nearest) by the
      integer factor `s = min_frame_size // max(H, W)` (at least 1).

  Returns:
    `(3 * s * H + 2 * gap, T * s * W + (T - 1) * gap, 3)` uint8.
  """
  rows = []
  for clip in (original, masked, reconstructed):
    clip = _to_uint8(clip)
    if clip.shape[-1] == 1:
      clip = np.repeat(clip, 3, axis=-1)
    scale = max(1, min_frame_size // max(clip.shape[1:3]))  # nearest upscale of small frames
    clip = np.repeat(np.repeat(clip, scale, axis=1), scale, axis=2)
    t, h, w, _ = clip.shape
    row = np.full((h, t * w + (t - 1) * gap, 3), 255, np.uint8)
    for i in range(t):
      row[:, i * (w + gap):i * (w + gap) + w] = clip[i]
    rows.append(row)
  spacer = np.full((gap, rows[0].shape[1], 3), 255, np.uint8)
  return np.concatenate([rows[0], spacer, rows[1], spacer, rows[2]], axis=0)


def write_png(workdir: str, name: str, step: int, image: np.ndarray) -> Optional[str]:
  """Writes `image` (`(H, W, 3)` uint8) to `WORKDIR/images/NAME_STEP.png`."""
  if not is_writer():
    return None
  from PIL import Image  # pylint: disable=g-import-not-at-top
  directory = os.path.join(workdir, IMAGES_DIR)
  os.makedirs(directory, exist_ok=True)
  path = os.path.join(directory, f"{name}_{int(step):07d}.png")
  Image.fromarray(np.asarray(image, np.uint8)).save(path)
  return path
