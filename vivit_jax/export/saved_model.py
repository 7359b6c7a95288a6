"""A TensorFlow SavedModel of a checkpoint's inference function (`jax2tf`).

    export_saved_model(served, "out/saved_model")
    loaded = tf.saved_model.load("out/saved_model")
    logits = loaded.signatures["serving_default"](video=video)["logits"]

The parameters become non-trainable `tf.Variable`s of the SavedModel; the
program is embedded as StableHLO (jax2tf native serialization, lowered for
`platforms`). The `serving_default` signature takes `video` float32
`(B, T, H, W, C)` (B any size unless `batch_size` is given) and returns
`{output_name: (B, N) float32}`. Needs TensorFlow, imported only here; where
it is missing `TensorFlowMissingError` says so.
"""

from typing import Optional, Sequence

import jax

from vivit_jax.serving.served_model import ServedModel

DEFAULT_PLATFORMS = ("cpu", "cuda")


class TensorFlowMissingError(ImportError):
  """TensorFlow is not installed, so no SavedModel can be written."""


def _tensorflow():
  try:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise TensorFlowMissingError(
        "a SavedModel needs TensorFlow (pip install tensorflow-cpu); the StableHLO "
        "export (--format stablehlo) does not") from e
  return tf


def export_saved_model(served: ServedModel, out_dir: str, batch_size: Optional[int] = None,
                       platforms: Sequence[str] = DEFAULT_PLATFORMS) -> str:
  """Writes the SavedModel of `served` to `out_dir`; returns `out_dir`."""
  tf = _tensorflow()
  from jax.experimental import jax2tf  # pylint: disable=g-import-not-at-top
  t, h, w, c = served.video_shape
  batch = "b" if batch_size is None else str(int(batch_size))
  converted = jax2tf.convert(
      served.function, with_gradient=False,
      polymorphic_shapes=[None, f"({batch}, {t}, {h}, {w}, {c})"],
      native_serialization_platforms=tuple(platforms))
  leaves, treedef = jax.tree_util.tree_flatten(served.params)
  variables = [tf.Variable(leaf, trainable=False, name=f"param_{i}")
               for i, leaf in enumerate(leaves)]
  spec = tf.TensorSpec([batch_size, t, h, w, c], tf.float32, name="video")
  output_name = served.output_name

  @tf.function(autograph=False, input_signature=[spec])
  def serve(video):
    params = jax.tree_util.tree_unflatten(treedef, list(variables))
    return {output_name: converted(params, video)}

  module = tf.Module()
  module.params = variables
  module.serve = serve
  tf.saved_model.save(module, out_dir, signatures={"serving_default": serve})
  return out_dir
