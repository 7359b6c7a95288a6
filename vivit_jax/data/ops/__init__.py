"""Train augmentations, one module per registered op (`data.augmentations`).

  flip          `data.flip`: left-right mirror of the uint8 crop window.
  color_jitter  `data.color_jitter` > 0: brightness, contrast, saturation, hue.
  rand_augment  `data.rand_augment_layers` > 0: RandAugment on [0, 1] pixels.

A new op is one file here (or anywhere, listed in `data.register_modules`)
with `@register_op(name, stage=...)`, see `vivit_jax.data.registry.Op`; the
pixel work itself lives in `transforms.py` / `rand_augment.py`. Importing
this package does not import TensorFlow.
"""

from vivit_jax.data.registry import register_op

__all__ = ["register_op"]
