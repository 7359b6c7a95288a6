"""vivit_jax: ViViT and masked video autoencoders in JAX/Flax.

Subpackages: `models` (Flax modules), `convert` (published weights in),
`train` (sharded steps, optimisers), `data` (tf.data input; needs TensorFlow).
"""

__version__ = "0.1.0"

from vivit_jax import tf_logs as _tf_logs

_tf_logs.install()  # TensorFlow's C++ start-up lines off every command
