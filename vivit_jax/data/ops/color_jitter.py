"""Op "color_jitter" (`data.color_jitter` > 0, `data.color_jitter_prob`)."""

from vivit_jax.data import transforms
from vivit_jax.data.registry import register_op


@register_op("color_jitter", stage="unit", enabled=lambda config: config.color_jitter > 0)
def color_jitter(seed, clip, config):
  """`(T, S, S, 3)` float32 [0, 1] -> the same, one jitter draw per clip."""
  return transforms.color_jitter(seed, clip, config.color_jitter, config.color_jitter_prob)
