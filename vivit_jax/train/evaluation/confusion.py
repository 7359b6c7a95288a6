"""A confusion matrix as an image (PIL only, no plotting library).

`confusion_image(matrix, class_names)` draws the row-normalised matrix
(row = true class, column = predicted class; white = 0, dark blue = 1) with
class names along both axes when there are few enough classes to read them
(`MAX_NAMED_CLASSES`), else class indices every few rows.
"""

from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

MAX_NAMED_CLASSES = 60
_MAX_SIDE = 1000  # pixels the cells may take, whatever the class count


def normalise_rows(matrix: np.ndarray) -> np.ndarray:
  """`(C, C)` float64 counts divided by their row sums (empty rows stay 0)."""
  matrix = np.asarray(matrix, np.float64)
  totals = matrix.sum(axis=1, keepdims=True)
  return np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)


def _colour(value: np.ndarray) -> np.ndarray:
  """`(...,)` in [0, 1] -> `(..., 3)` uint8, white to dark blue."""
  white, blue = np.array([255.0, 255.0, 255.0]), np.array([8.0, 48.0, 107.0])
  value = np.clip(value, 0.0, 1.0)[..., None]
  return np.round(white + (blue - white) * value).astype(np.uint8)


def confusion_image(matrix: np.ndarray, class_names: Optional[Sequence[str]] = None,
                    title: str = "") -> np.ndarray:
  """`(H, W, 3)` uint8 picture of a `(C, C)` confusion matrix of counts."""
  matrix = np.asarray(matrix)
  if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
    raise ValueError(f"a confusion matrix is square (C, C), got shape {matrix.shape}")
  num = matrix.shape[0]
  names = [str(n) for n in class_names] if class_names is not None else [
      str(i) for i in range(num)]
  if len(names) != num:
    raise ValueError(f"{len(names)} class names for a {num}-class confusion matrix")
  font = ImageFont.load_default()
  cell = int(max(1, min(40, _MAX_SIDE // num)))
  named = num <= MAX_NAMED_CLASSES
  label_every = 1 if named else int(np.ceil(num / 20))
  shown = [names[i] if named else str(i) for i in range(num)]
  text_w = max(font.getbbox(s)[2] for s in shown) + 6
  text_h = 12
  left, top = text_w + text_h + 4, text_w + 2 * text_h + 8
  size_w, size_h = left + num * cell + 8, top + num * cell + 8
  image = Image.new("RGB", (size_w, size_h), "white")
  normalised = normalise_rows(matrix)
  cells = np.repeat(np.repeat(_colour(normalised), cell, axis=0), cell, axis=1)
  image.paste(Image.fromarray(cells), (left, top))
  draw = ImageDraw.Draw(image)
  draw.text((4, 2), title or "confusion (rows: true, columns: predicted)", fill="black",
            font=font)
  if named and cell >= 18:
    for r in range(num):
      for c in range(num):
        value = normalised[r, c]
        draw.text((left + c * cell + 2, top + r * cell + cell // 2 - 5), f"{value:.2f}"[1:]
                  if value < 1 else "1.0", fill="white" if value > 0.5 else "black", font=font)
  # Row labels (true class) on the left, column labels (predicted) rotated on top.
  for i in range(0, num, label_every):
    y = top + i * cell + max(0, (cell - text_h) // 2)
    draw.text((text_h + 2, y), shown[i], fill="black", font=font)
    label = Image.new("RGB", (text_w, text_h), "white")
    ImageDraw.Draw(label).text((0, 0), shown[i], fill="black", font=font)
    label = label.rotate(90, expand=True)
    image.paste(label, (left + i * cell + max(0, (cell - text_h) // 2), 2 * text_h + 4))
  side = Image.new("RGB", (text_w, text_h), "white")
  ImageDraw.Draw(side).text((0, 0), "true", fill="black", font=font)
  image.paste(side.rotate(90, expand=True), (0, top))
  return np.asarray(image)


def save_confusion_png(path: str, matrix: np.ndarray,
                       class_names: Optional[Sequence[str]] = None, title: str = "") -> str:
  """Writes `confusion_image(...)` to `path` (PNG); returns the path."""
  Image.fromarray(confusion_image(matrix, class_names, title)).save(path, format="PNG")
  return path
