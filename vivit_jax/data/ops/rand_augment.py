"""Op "rand_augment" (`data.rand_augment_layers` > 0, `data.rand_augment_magnitude`)."""

from vivit_jax.data import rand_augment as rand_augment_lib
from vivit_jax.data.registry import register_op


@register_op("rand_augment", stage="unit",
             enabled=lambda config: config.rand_augment_layers > 0)
def rand_augment(seed, clip, config):
  """`(T, S, S, 3)` float32 [0, 1] -> the same, `rand_augment_layers` ops per clip."""
  return rand_augment_lib.rand_augment(seed, clip, config.rand_augment_layers,
                                       config.rand_augment_magnitude)
