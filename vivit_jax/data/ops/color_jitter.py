"""Op "color_jitter" (`data.color_jitter` > 0, `data.color_jitter_prob`).

Off on the host when `data.color_jitter_on_device` moves it into the jitted
step (`vivit_jax.train.device_preprocess`).
"""

from vivit_jax.data import transforms
from vivit_jax.data.registry import register_op


def _on_host(config) -> bool:
  return config.color_jitter > 0 and not config.get("color_jitter_on_device", False)


@register_op("color_jitter", stage="unit", enabled=_on_host)
def color_jitter(seed, clip, config):
  """`(T, S, S, 3)` float32 [0, 1] -> the same, one jitter draw per clip."""
  return transforms.color_jitter(seed, clip, config.color_jitter, config.color_jitter_prob)
