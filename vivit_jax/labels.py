"""Class-name files: one name per line, in label order; imports nothing heavy."""

from typing import List, Optional


def read_labels(path: str, num_classes: Optional[int] = None) -> List[str]:
  """Class names from `path` (blank lines skipped).

  Raises ValueError naming the file when `num_classes` is given and the
  file lists a different number of names.
  """
  with open(path) as f:
    labels = [line.strip() for line in f if line.strip()]
  if num_classes is not None and len(labels) != num_classes:
    raise ValueError(f"{path}: {len(labels)} labels, but the model has {num_classes} classes")
  return labels
