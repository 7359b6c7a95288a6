"""Video input pipelines on tf.data: DMVR TFRecords, TFDS, lists of files, or
any source registered with `register_source` (augmentations: `register_op`).

    from vivit_jax import data
    config = data.default_data_config()
    it = data.create_iterator(config, train=True, batch_size=8, seed=0)
    batch = next(it)  # {"video": (B, T, H, W, C) float32, "label": (B,) int32}

Importing this package does not import TensorFlow; `default_data_config`,
`resolve_data_config` and the registries never do. Everything else loads on
first use. Layout: `sources/` (one module per source), `ops/` (one module
per train augmentation), `registry.py` (both, by name), `pipeline.py`
(seeded order -> augmented clips), `transforms.py` and `rand_augment.py`
(pixel work), `make_tfrecords.py` (videos -> TFRecords).
"""

from vivit_jax.common.lazy import lazy_getattr
from vivit_jax.data.config import default_data_config
from vivit_jax.data.config import resolve_data_config
from vivit_jax.data.registry import register_op, register_source

_LAZY = {
    "create_iterator": ("vivit_jax.data.builder", "create_iterator"),
    "build_source": ("vivit_jax.data.builder", "build_source"),
    "VideoIterator": ("vivit_jax.data.iterator", "VideoIterator"),
    "write_demo_dataset": ("vivit_jax.data.demo.synthetic", "write_demo_dataset"),
    "demo_data_config": ("vivit_jax.data.demo.synthetic", "demo_data_config"),
}

__all__ = ["default_data_config", "register_op", "register_source", "resolve_data_config",
           *_LAZY]

__getattr__ = lazy_getattr(__name__, _LAZY)
