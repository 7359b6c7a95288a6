"""A qwix int8-quantized model beside the float ones (post-training quantization).

    qmodel, qparams = quantize_model_params(model, params, video_shape, "int8_weight")
    checkpoints.save_quantized(out_dir, qparams, config, method_config(...))  # int8 checkpoint
    model, params = checkpoints.load_quantized(out_dir, build_model(config["model"]), video_shape)
    logits = model.apply({"params": params}, video)            # like any model, (B, num_classes)

Methods (`METHODS`), both on every `jax.lax.dot_general` of the model (the
query / key / value / output projections, the MLPs and the head; the tubelet
convolution and the attention's own products stay float32):
  int8_weight:  weights stored as int8 with a float32 scale per output
                channel; activations stay float32 (the weight is dequantized
                inside the matmul).
  int8_dynamic: int8 weights and, per token, int8 activations whose scale
                is computed at run time (dynamic range, no calibration data):
                int8 x int8 matmuls accumulated in int32 (on the CPU, s8 x s8
                -> s32 dots that XLA runs in YNNPACK; `quantized_program`
                counts them in the compiled program).

A quantized checkpoint is an ordinary model checkpoint (`vivit_jax.checkpoints`)
whose `config.json` has a `"quantization"` block (`{"method", "library",
"weight_calibration", ...}`) and whose `params/` hold, for each quantized
kernel, `kernel/array/qvalue` (int8) and `kernel/array/scale` (float32)
instead of the float `kernel`. `checkpoints.load_quantized` (what
`checkpoints.load_model` calls for such a checkpoint) rebuilds the qwix model
from the config; its `apply` takes these plain nested dicts of arrays, so
callers (predict, stream, evaluate, export) pass them around like float
parameters. `vivit-compress` (`vivit_jax.compress`) writes such checkpoints.
"""

import dataclasses
from typing import Any, Dict, Mapping, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import qwix

from vivit_jax.common import params as params_lib

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
  return params_lib.unflatten_params(params_lib.flatten_params(tree))


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
    flat = params_lib.flatten_params(plain)
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
  names = tuple(params_lib.flatten_params(abstract))
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


def dequantized_params(plain) -> Dict[str, Any]:
  """The float parameters an int8 plain tree stands for: every
  `.../kernel/array/{qvalue, scale}` becomes `.../kernel = qvalue * scale`
  (float32; the scale broadcasts per output channel). Other leaves are kept."""
  flat = params_lib.flatten_params(plain)
  out = {}
  for name, value in flat.items():
    if name.endswith("/array/scale"):
      continue
    if name.endswith("/array/qvalue"):
      base = name[:-len("/array/qvalue")]
      value = jnp.asarray(value, jnp.float32) * jnp.asarray(flat[base + "/array/scale"])
      name = base
    out[name] = value
  return params_lib.unflatten_params(out)
