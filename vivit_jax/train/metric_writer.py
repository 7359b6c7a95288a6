"""What a user reads of a run: console progress, TensorBoard scalars, config.json.

Only process 0 writes anything (`vivit_jax.common.console.is_writer()`); on other processes every
writer here is a no-op, so the training loop calls them unconditionally.

  MetricWriter       scalars and images as TensorBoard event files
                     (tensorboardX, no TensorFlow) under `WORKDIR/tensorboard`.
  Progress           one console line per logging interval: step, loss,
                     learning rate, skipped videos (if any), clips/s and ETA.
  write_config_json  the resolved config, as `WORKDIR/config.json`.

Pictures (reconstruction grids as PNGs) are in `vivit_jax.train.evaluation.plots`.
"""

import json
import os
import time
from typing import Any, Dict, Mapping, Optional

import numpy as np

from vivit_jax.common.console import console, is_writer
from vivit_jax.common.params import json_default

TENSORBOARD_DIR = "tensorboard"
CONFIG_JSON = "config.json"


def write_config_json(workdir: str, config, filename: str = CONFIG_JSON) -> Optional[str]:
  """Writes the resolved config to `WORKDIR/<filename>`; returns its path."""
  if not is_writer():
    return None
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, filename)
  data = config.to_dict() if hasattr(config, "to_dict") else dict(config)
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(data, f, indent=2, sort_keys=True, default=json_default)
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


def metric_text(value: float) -> str:
  """A metric on the console: 5 significant digits (`0.0049876`, `1.3863`, `23.457`),
  so a small value (a pixel MSE near 0.005) reads as more than zeros and a loss
  keeps the 4 decimals that show it moving."""
  return f"{float(value):.5g}"


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

  def report(self, step: int, metrics: Mapping[str, float],
             data_counts: Optional[Mapping[str, int]] = None) -> Dict[str, float]:
    """Prints a progress line for `step`; returns the throughput scalars.

    `data_counts`: `inputs.data_counters` of the train input; the line says
    "skipped N videos (kind n, ...)" once any was skipped.
    """
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
                     + (f"{value:.3e}" if name == "learning_rate" else metric_text(value)))
    skipped = skipped_phrase(data_counts or {})
    if skipped:
      parts.append(skipped)
    parts.append(f"{clips_per_sec:7.1f} clips/s")
    parts.append(f"ETA {eta}")
    console(" | ".join(parts))
    return {"throughput/clips_per_sec": clips_per_sec, "throughput/steps_per_sec": rate}


def skipped_phrase(data_counts: Mapping[str, int]) -> str:
  """"skipped 3 videos (corrupt_frame 2, unreadable 1)", or "" if none."""
  total = int(data_counts.get("data/skipped_corrupt", 0))
  if not total:
    return ""
  kinds = ", ".join(f"{name[len('data/skipped_'):]} {count}"
                    for name, count in sorted(data_counts.items())
                    if name.startswith("data/skipped_") and name != "data/skipped_corrupt"
                    and count)
  return f"skipped {total} video{'s' if total != 1 else ''} ({kinds})"
