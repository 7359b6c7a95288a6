"""Post-training int8 quantization of a model checkpoint with qwix.

    qmodel, qparams = quantize_model_params(model, params, video_shape, "int8_weight")
    save_quantized(out_dir, qparams, config, method_config)   # int8 checkpoint
    model, params = load_quantized(out_dir, build_model(config["model"]), video_shape)
    logits = model.apply({"params": params}, video)            # like any model

Methods (`METHODS`), both on every `jax.lax.dot_general` of the model (the
query / key / value / output projections, the MLPs and the head; the tubelet
convolution and the attention's own products stay float32):
  int8_weight:  weights stored as int8 with a float32 scale per output
                channel; activations stay float32 (the weight is dequantized
                inside the matmul).
  int8_dynamic: int8 weights and, per token, int8 activations whose scale
                is computed at run time (dynamic range, no calibration data):
                int8 x int8 matmuls accumulated in int32.

A quantized checkpoint is an ordinary model checkpoint (`vivit_jax.checkpoints`)
whose `config.json` has a `"quantization"` block (`{"method", "library",
"weight_calibration", ...}`) and whose `params/` hold, for each quantized
kernel, `kernel/array/qvalue` (int8) and `kernel/array/scale` (float32)
instead of the float `kernel`. `load_quantized` rebuilds the qwix model from
the config; its `apply` takes these plain nested dicts of arrays, so
callers (predict, stream, evaluate, export) pass them around like float
parameters.
"""

import dataclasses
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import qwix

from vivit_jax import checkpoints

QUANTIZATION_KEY = "quantization"
METHODS = {
    "int8_weight": dict(weight_qtype="int8", act_qtype=None),
    "int8_dynamic": dict(weight_qtype="int8", act_qtype="int8"),
}
# qwix weight calibration: symmetric absmax, optionally clipped ("absmax,0.9"),
# or a multiple of the RMS ("rms,4").
CALIBRATIONS = ("absmax", "rms")
QUANTIZED_OPS = ("dot_general",)


def method_config(method: str, calibration: str = "absmax") -> Dict[str, Any]:
  """The `"quantization"` block of config.json for a method (validated)."""
  if method not in METHODS:
    raise ValueError(f"unknown quantization method {method!r}; valid: {sorted(METHODS)}")
  kind, *args = calibration.split(",")
  if kind not in CALIBRATIONS or len(args) > 1 or (kind == "rms" and not args):
    raise ValueError(f"bad --calibration {calibration!r}: use 'absmax', 'absmax,<clip>' "
                     "(e.g. absmax,0.9) or 'rms,<multiple>' (e.g. rms,4)")
  for arg in args:
    try:
      float(arg)
    except ValueError:
      raise ValueError(f"bad --calibration {calibration!r}: {arg!r} is not a number") from None
  return {"method": method, "library": f"qwix {qwix.__version__}", "ops": list(QUANTIZED_OPS),
          "weight_calibration": calibration, **METHODS[method]}


def is_quantized(config: Mapping[str, Any]) -> bool:
  """Whether a checkpoint's config.json says it holds quantized parameters."""
  return bool(config.get(QUANTIZATION_KEY))


def qwix_model(model: nn.Module, quantization: Mapping[str, Any]) -> nn.Module:
  """`model` with its dot_generals quantized as the `"quantization"` block says."""
  unknown = sorted(set(quantization) - {"method", "library", "ops", "weight_calibration",
                                        "weight_qtype", "act_qtype"})
  if unknown:
    raise ValueError(f"unknown \"quantization\" key(s) {unknown} in config.json")
  expected = method_config(quantization["method"], quantization.get("weight_calibration",
                                                                    "absmax"))
  act = expected["act_qtype"]
  rule = qwix.QuantizationRule(
      module_path=".*", op_names=QUANTIZED_OPS, weight_qtype=jnp.dtype(expected["weight_qtype"]),
      act_qtype=None if act is None else jnp.dtype(act),
      weight_calibration_method=expected["weight_calibration"])
  return qwix.quantize_model(model, qwix.PtqProvider([rule]))


def _abstract_qparams(qmodel: nn.Module, video_shape: Sequence[int]):
  """The unboxed qwix parameter tree (`jax.ShapeDtypeStruct` leaves)."""
  dummy = jnp.zeros((1, *video_shape), jnp.float32)
  return nn.unbox(jax.eval_shape(lambda: qmodel.init(jax.random.PRNGKey(0), dummy))["params"])


def to_plain(tree) -> Dict[str, Any]:
  """Nested plain dicts (names like `kernel/array/qvalue`) of a qwix tree."""
  return checkpoints.unflatten_params(checkpoints.flatten_params(tree))


@dataclasses.dataclass(frozen=True)
class QuantizedModel:
  """A qwix-quantized Flax model whose `apply` takes plain nested-dict params.

  `treedef` is the structure of the qwix parameter tree (int8 `QArray`s in
  `WithAux` boxes); `names` its leaves' flattened names, in order.
  Other attributes are the float model's (e.g. `num_classes`).
  """

  module: nn.Module
  float_module: nn.Module
  treedef: Any
  names: Tuple[str, ...]
  quantization: Mapping[str, Any]

  def qwix_params(self, plain):
    """Plain nested dicts -> the qwix parameter tree."""
    flat = checkpoints.flatten_params(plain)
    return jax.tree_util.tree_unflatten(self.treedef, [flat[name] for name in self.names])

  def apply(self, variables, *args, **kwargs):
    variables = dict(variables, params=self.qwix_params(variables["params"]))
    return self.module.apply(variables, *args, **kwargs)

  def __getattr__(self, name):
    if name.startswith("__") or name == "float_module":
      raise AttributeError(name)
    return getattr(self.float_module, name)


def quantized_model(model: nn.Module, quantization: Mapping[str, Any],
                    video_shape: Sequence[int]) -> Tuple[QuantizedModel, Dict[str, Any]]:
  """`(QuantizedModel, abstract plain params)` for clips of `video_shape` `(T, H, W, C)`."""
  if isinstance(model, QuantizedModel):
    raise ValueError("the model is already quantized")
  qmodel = qwix_model(model, quantization)
  abstract = _abstract_qparams(qmodel, video_shape)
  leaves, treedef = jax.tree_util.tree_flatten(abstract)
  names = tuple(checkpoints.flatten_params(abstract))
  if len(names) != len(leaves):
    raise ValueError("qwix parameter names are not unique")
  return QuantizedModel(qmodel, model, treedef, names, dict(quantization)), to_plain(abstract)


def quantize_model_params(model: nn.Module, params, video_shape: Sequence[int], method: str,
                          calibration: str = "absmax") -> Tuple[QuantizedModel, Dict[str, Any]]:
  """`(QuantizedModel, int8 plain params)` from a float model and its params."""
  qmodel, _ = quantized_model(model, method_config(method, calibration), video_shape)
  abstract = _abstract_qparams(qmodel.module, video_shape)
  params = jax.tree_util.tree_map(jnp.asarray, nn.unbox(params))
  return qmodel, to_plain(qwix.quantize_params(params, abstract))


def param_bytes(params) -> int:
  """Bytes of all parameter arrays."""
  return int(sum(np.dtype(x.dtype).itemsize * int(np.prod(x.shape))
                 for x in jax.tree_util.tree_leaves(params)))


def save_quantized(directory: str, qparams, config: Mapping[str, Any],
                   quantization: Mapping[str, Any], force: bool = False) -> str:
  """Writes a quantized model checkpoint: `config` plus the `"quantization"` block."""
  config = dict(config)
  config[QUANTIZATION_KEY] = dict(quantization)
  return checkpoints.save_model_checkpoint(directory, qparams, config, force=force)


def load_quantized(directory: str, model: nn.Module, video_shape: Sequence[int],
                   config: Optional[Mapping[str, Any]] = None
                   ) -> Tuple[QuantizedModel, Dict[str, Any]]:
  """`(QuantizedModel, params)` from a quantized model checkpoint.

  Args:
    directory: written by `save_quantized` (`python -m vivit_jax.compress`).
    model: the float model its config.json describes (with any overrides,
      e.g. dtype), as built by `vivit_jax.models.build_model`.
    video_shape: `(T, H, W, C)` of one clip.
    config: its config.json if already read.
  Raises:
    ValueError: not a quantized checkpoint; checkpoints.ParamMismatchError
    when the stored names / shapes differ from what the method creates.
  """
  config = checkpoints.load_model_config(directory) if config is None else config
  if not is_quantized(config):
    raise ValueError(f"{directory} holds float parameters (no \"{QUANTIZATION_KEY}\" in "
                     f"{checkpoints.CONFIG_FILE}); load it as a float checkpoint")
  qmodel, abstract = quantized_model(model, config[QUANTIZATION_KEY], video_shape)
  _, params = checkpoints.load_model_checkpoint(directory, expected_params=abstract)
  return qmodel, params


def video_shape_of(config: Mapping[str, Any], where: str = checkpoints.CONFIG_FILE
                   ) -> Tuple[int, int, int, int]:
  """`(T, H, W, C)` of a checkpoint's clips (its input spec and channels)."""
  from vivit_jax.serving import inference  # pylint: disable=g-import-not-at-top
  spec = inference.resolve_input_spec(config, where)
  channels = int((config.get("source") or {}).get("num_channels", 3))
  return (spec.num_frames, *spec.image_size, channels)


def eval_state(resolved, model: nn.Module, mesh, directory: str):
  """`(QuantizedModel, state, shardings, step, labels)` for `vivit_jax.evaluate`.

  Like `evaluate.load_state` for a model checkpoint, but the state's
  `params` are the quantized checkpoint's (replicated over `mesh`) and the
  returned model is the one to build the eval step with. `resolved`: the
  experiment's `vivit_jax.train.specs.resolve(config)`.
  """
  from vivit_jax.train import inputs, steps  # pylint: disable=g-import-not-at-top
  shape = inputs.video_shape(resolved.data)
  state, shardings = steps.init_train_state(resolved.step, model, mesh, resolved.seed, shape)
  stored = checkpoints.load_model_config(directory)
  qmodel, params = load_quantized(directory, model, shape, stored)
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  params = jax.device_put(params, replicated)
  params_shardings = jax.tree_util.tree_map(lambda _: replicated, params)
  state = state.replace(params=params, ema_params=None)
  shardings = shardings.replace(params=params_shardings, ema_params=None)
  step = (stored.get("source") or {}).get("step")
  return qmodel, state, shardings, None if step is None else int(step), stored.get("labels")
