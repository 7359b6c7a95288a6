"""The inference function of a model checkpoint, as exported.

    served = load_served_model("ckpt_dir")
    logits = served.function(served.params, video)   # (B, T, H, W, C) -> (B, classes)

`function(params, video)` is pure: the parameters are an argument, so the
exported program stays small and the weights travel beside it (`params.npz`).
Video is float32 channels-last `(B, T, H, W, C)`, already preprocessed as
the checkpoint's input spec says (`vivit_jax.serving.inference`: resize, centre
crop, `(pixels / 255 - mean) / std`); the output is float32 logits
`(B, num_classes)`, or pooled features `(B, D)` for a checkpoint without
a head.
"""

import dataclasses
import os
from typing import Any, Callable, Dict, Optional

import jax
import jax.numpy as jnp
import numpy as np

from vivit_jax import checkpoints
from vivit_jax.checkpoints.input_spec import resolve_input_spec
from vivit_jax.models import registry


@dataclasses.dataclass(frozen=True)
class ServedModel:
  """A checkpoint ready for export.

  Attributes:
    function: `(params, video) -> outputs`, see module docstring.
    params: nested dicts of float numpy arrays (plain dicts, no boxes).
    video_shape: `(T, H, W, C)` of one example.
    output_name: "logits" or "features".
    output_size: classes, or the feature width.
    input_spec: `checkpoints.input_spec.InputSpec.to_json()`: how frames become `video`.
    labels: class names (None without any).
    model_config: the checkpoint's model config.
    model: the Flax module (`models.quantized.QuantizedModel` for an int8
      checkpoint), for exporters that need more than `function`.
    quantization: the checkpoint's `"quantization"` block (None: float).
  """

  function: Callable[[Any, Any], Any]
  params: Dict[str, Any]
  video_shape: tuple
  output_name: str
  output_size: int
  input_spec: Dict[str, Any]
  labels: Optional[list]
  model_config: Dict[str, Any]
  model: Any = None
  quantization: Optional[Dict[str, Any]] = None


def plain_tree(params) -> Dict[str, Any]:
  """Nested plain dicts of numpy arrays (the structure `params.npz` restores)."""
  return checkpoints.unflatten_params(
      {k: np.asarray(v) for k, v in checkpoints.flatten_params(params).items()})


def load_served_model(checkpoint_dir: str, num_frames: Optional[int] = None,
                      image_size: Optional[int] = None,
                      dtype: Optional[str] = None) -> ServedModel:
  """Reads a model checkpoint (`checkpoints.load_model`) for export.

  `num_frames` / `image_size` override the input spec of its config.json
  (needed where it records none); `dtype` its compute dtype (e.g. float32
  for a model trained in bfloat16, for runtimes without bfloat16 kernels). Raises ValueError for a checkpoint that is
  not a ViViT (a VideoMAE pretraining autoencoder has no inference output).
  """
  where = os.path.join(checkpoint_dir, checkpoints.CONFIG_FILE)
  config = checkpoints.load_model_config(checkpoint_dir)
  model_config = dict(config["model"], **({"dtype": dtype} if dtype else {}))
  if registry.objective_of(model_config) != "classification":
    raise ValueError(f"{where}: model.name={model_config.get('name')!r}; export needs a "
                     "classifier or feature extractor (e.g. 'vivit'), not a pretraining model")
  spec = resolve_input_spec(config, where, num_frames=num_frames, image_size=image_size)
  channels = int((config.get("source") or {}).get("num_channels", 3))
  h, w = spec.image_size
  video_shape = (spec.num_frames, h, w, channels)
  model, params, _ = checkpoints.load_model(checkpoint_dir, video_shape, dtype=dtype)
  dummy = jnp.zeros((1,) + video_shape, jnp.float32)
  num_classes = int(model_config.get("num_classes", 400))
  out = jax.eval_shape(lambda p: model.apply({"params": p}, dummy), params)

  def function(params, video):
    return jnp.asarray(model.apply({"params": params}, video), jnp.float32)

  return ServedModel(function, plain_tree(params), video_shape,
                     "logits" if num_classes else "features", int(out.shape[-1]),
                     spec.to_json(), config.get("labels"), model_config, model,
                     config.get("quantization"))
