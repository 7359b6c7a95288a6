"""Op "flip" (`data.flip`): mirrors the clip left-right with probability 1/2.

Runs on the uint8 crop window before the resize (cheaper; the two commute).
"""

from vivit_jax.data import transforms
from vivit_jax.data.registry import register_op


@register_op("flip", stage="uint8", enabled=lambda config: config.flip)
def flip(seed, clip, config):
  """`(T, h, w, 3)` uint8 -> the same, every frame mirrored or none."""
  del config
  return transforms.random_flip(seed, clip)
