"""vivit_jax: ViViT and masked video autoencoders in JAX/Flax.

Rooms, each importing only the ones listed before it (docs/architecture.md):
`common` (constants, user errors, parameter trees, console), `models` (Flax
modules, the int8 model), `data` (tf.data input; needs TensorFlow),
`checkpoints` (model and training checkpoints), `convert` (published weights
in), `serving` (predict, stream), `train` (sharded steps, the loop and
`train.evaluation`), `export`, `compress`; `main` is `vivit-train`.
"""

__version__ = "0.1.0"

from vivit_jax.common import tf_logs as _tf_logs

_tf_logs.install()  # TensorFlow's C++ start-up lines off every command
