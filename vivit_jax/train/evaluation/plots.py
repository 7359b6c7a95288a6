"""Pictures of a run: masked-autoencoder reconstructions as uint8 grids and PNGs.

  reconstruction_grid  original / masked / reconstructed frames as one image.
  write_png            an image as `WORKDIR/images/NAME_STEP.png` (process 0).
"""

import os
from typing import Optional

import numpy as np

from vivit_jax.common.console import is_writer

IMAGES_DIR = "images"


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
