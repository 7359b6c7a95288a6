"""Loss curves from a run's TensorBoard event files, drawn as a PNG.

`read_scalars(log_dir, tag)` parses the tensorboardX event files under
`log_dir` (no TensorBoard or TensorFlow needed); `curve_image` draws one or
more `(steps, values)` series with PIL; `save_loss_curve` does both for a
workdir's `train/loss` and `eval/loss`.
"""

import glob
import os
import struct
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw

Series = Tuple[np.ndarray, np.ndarray]
COLOURS = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189))


def _records(path: str):
  """The payloads of one TFRecord-framed event file (length, crc, data, crc)."""
  with open(path, "rb") as f:
    while True:
      header = f.read(12)
      if len(header) < 12:
        return
      (length,) = struct.unpack("<Q", header[:8])
      data = f.read(length)
      f.read(4)
      if len(data) < length:
        return
      yield data


def read_scalars(log_dir: str, tag: str) -> Series:
  """`(steps, values)` of scalar `tag` in every event file under `log_dir`,
  sorted by step (the last value wins for a repeated step)."""
  from tensorboardX.proto import event_pb2  # pylint: disable=import-outside-toplevel
  points: Dict[int, float] = {}
  for path in sorted(glob.glob(os.path.join(log_dir, "**", "events.out.tfevents.*"),
                               recursive=True)):
    for data in _records(path):
      event = event_pb2.Event.FromString(data)
      for value in event.summary.value:
        if value.tag == tag:
          points[int(event.step)] = float(value.simple_value)
  steps = np.array(sorted(points), np.int64)
  return steps, np.array([points[s] for s in steps], np.float64)


def curve_image(series: Sequence[Tuple[str, Series]], title: str = "",
                size: Tuple[int, int] = (480, 320), y_min: Optional[float] = 0.0
                ) -> np.ndarray:
  """`(H, W, 3)` uint8 line plot of named `(steps, values)` series."""
  width, height = size
  left, right, top, bottom = 56, 12, 24, 30
  image = Image.new("RGB", size, "white")
  draw = ImageDraw.Draw(image)
  drawn = [(name, s, v) for name, (s, v) in series if len(s)]
  if not drawn:
    draw.text((left, height // 2), "no data", fill="black")
    return np.asarray(image)
  x_hi = max(float(s.max()) for _, s, _ in drawn) or 1.0
  y_hi = max(float(v.max()) for _, _, v in drawn)
  y_lo = min(float(v.min()) for _, _, v in drawn) if y_min is None else y_min
  y_hi = y_hi if y_hi > y_lo else y_lo + 1.0

  def xy(step, value):
    x = left + (width - left - right) * step / x_hi
    y = top + (height - top - bottom) * (1 - (value - y_lo) / (y_hi - y_lo))
    return x, y

  draw.rectangle([left, top, width - right, height - bottom], outline="black")
  for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
    value = y_lo + frac * (y_hi - y_lo)
    _, y = xy(0, value)
    draw.line([left - 4, y, left, y], fill="black")
    draw.text((4, y - 6), f"{value:.3g}", fill="black")
  draw.text((left, height - bottom + 6), "0", fill="black")
  draw.text((width - right - 40, height - bottom + 6), f"step {int(x_hi)}", fill="black")
  draw.text((left, 6), title, fill="black")
  for index, (name, steps, values) in enumerate(drawn):
    colour = COLOURS[index % len(COLOURS)]
    points = [xy(s, v) for s, v in zip(steps, values)]
    if len(points) > 1:
      draw.line(points, fill=colour, width=2)
    for x, y in points if len(points) < 8 else points[-1:]:
      draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
    draw.text((width - right - 150, top + 6 + 14 * index), name, fill=colour)
  return np.asarray(image)


def save_loss_curve(workdir: str, out_path: str, title: str = "") -> List[str]:
  """Writes `train/loss` and `eval/loss` of `workdir` as a PNG; returns the
  names of the series found."""
  series = [(name, read_scalars(workdir, name)) for name in ("train/loss", "eval/loss")]
  Image.fromarray(curve_image(series, title)).save(out_path, format="PNG")
  return [name for name, (steps, _) in series if len(steps)]
