"""`json_default`: the `default=` of `json.dump` for configs and metrics; imports numpy only."""

import numpy as np


def json_default(value):
  """numpy scalars -> Python numbers, arrays -> lists, classes and functions
  -> their `__name__`, anything else -> `str(value)`."""
  if isinstance(value, (np.integer, np.floating)):
    return value.item()
  if isinstance(value, np.ndarray):
    return value.tolist()
  if isinstance(value, type) or callable(value):
    return getattr(value, "__name__", str(value))
  return str(value)
