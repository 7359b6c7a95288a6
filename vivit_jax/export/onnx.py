"""ONNX export of a checkpoint's inference function, through jax2onnx.

Written to OUT_DIR by `export_onnx` (`vivit-export --format onnx`):

  model.onnx       input "video" `(B, T, H, W, C)` float32, output "logits"
                   `(B, classes)` (or "features"); the parameters are baked
                   in as initializers
  signature.json   like the StableHLO export's (shapes, batch "symbolic" or
                   "static" with `batch_reason`, input spec, labels, model
                   config) plus `format` "onnx", `opset`, `jax2onnx_version`
                   and `graph`: how the model became ONNX (below)

The batch dimension is symbolic ("B") unless a batch size is given or the
model does not trace with one. What exports (`graph`):

  float32 models, every attention kernel but cudnn, token-merged ones too:
    "jax2onnx", the same computation as `jax.jit`, written with the nodes
    ONNX Runtime fuses: LayerNormalization, Gelu, and projections as MatMul
    + Add (`onnx_graph`; jax2onnx's Einsum otherwise), each one Gemm.
  int8_weight checkpoints: "jax2onnx (qwix int8 weights)": int8
    initializers dequantized in the graph (Cast, Mul) before float matmuls,
    traced with jax2onnx's flax.linen Dense plugins off (they read the
    kernel from the module scope, where qwix keeps an int8 array).
  int8_dynamic checkpoints: "jax2onnx (qwix int8 x int8 as MatMulInteger)":
    traced the same way; jax2onnx lowers qwix's int8 x int8 -> int32
    dot_general to an int8 Gemm / Einsum ONNX Runtime refuses, and its
    float -> int8 casts wrap where XLA's saturate, so `onnx_int8` rewrites
    both (MatMulInteger; Clip before the Cast). ONNX Runtime divides by
    each token's activation scale where XLA multiplies by its reciprocal,
    so a few activations in a thousand round to the neighbouring int8
    value (tests/unit/export/test_onnx.py measures the logit difference).
    `export_model(..., int8_dynamic="onnxruntime")` instead quantizes the
    float graph of the dequantized weights with
    `onnxruntime.quantization.quantize_dynamic` (per-channel int8 weights,
    uint8 activations per tensor: ONNX Runtime's own int8 path, another
    arithmetic than qwix's).

The library functions (`export_function`, `export_model`, `quantize_dynamic`,
`session`) take in-memory models, for benchmarks:

    proto, graph = export_model(model, params, (T, H, W, C))  # batch symbolic
    logits = session(proto).run(None, {"video": video})[0]
"""

import contextlib
from importlib import metadata
import json
import logging
import warnings
import os
import tempfile
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from vivit_jax.common import onnx_deps
from vivit_jax.export import onnx_graph, onnx_int8
from vivit_jax.models import quantized
from vivit_jax.serving.onnx_backend import FORMAT, MODEL_FILE, SIGNATURE_FILE, session
from vivit_jax.serving.served_model import ServedModel

OPSET = 23
INPUT_NAME = "video"
SYMBOLIC_BATCH = "B"
WHAT = "vivit-export --format onnx"
# Loggers that report jax2onnx's optional plugins (equinox, brax examples)
# failing to import, with tracebacks, and onnx-ir's notes on untyped shape
# constants: noise for users of this export, silenced while it runs.
# onnxruntime.quantization advises pre-processing on the root logger.
QUIET_LOGGERS = ("jax2onnx.plugins.plugin_system", "onnx_ir.serde", "")
# jax2onnx plugins replacing flax.linen modules that hold a kernel; off for qwix models.
LINEN_KERNEL_PLUGINS = ("linen.dense", "linen.dense_general", "linen.einsum")
GRAPH_FLOAT = "jax2onnx"
GRAPH_INT8_WEIGHT = "jax2onnx (qwix int8 weights)"
GRAPH_INT8_DYNAMIC = "jax2onnx (qwix int8 x int8 as MatMulInteger)"
GRAPH_INT8_DYNAMIC_ORT = "jax2onnx float graph + onnxruntime quantize_dynamic"
INT8_DYNAMIC = ("qwix", "onnxruntime")
# LayerNorm as one LayerNormalization node (ONNX Runtime's fused kernel),
# not jax2onnx's default explicit graph of ReduceMean / Sub / Sqrt / Div.
NORMALIZATION = "prefer_native"

__all__ = ["export_function", "export_model", "export_onnx", "quantize_dynamic", "session"]


@contextlib.contextmanager
def _quiet():
  """The exporter's logs below ERROR, and its own deprecation warnings, unseen."""
  loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
  levels = [logger.level for logger in loggers]
  for logger in loggers:
    logger.setLevel(logging.ERROR)
  try:
    with warnings.catch_warnings():
      warnings.filterwarnings("ignore", category=DeprecationWarning, module="jax2onnx")
      yield
  finally:
    for logger, level in zip(loggers, levels):
      logger.setLevel(level)


def _jax2onnx():
  """The jax2onnx module with its plugins loaded quietly (UserError naming
  the install commands when it or onnx / onnxruntime is missing)."""
  for module in ("onnx", "onnx_ir", "onnxruntime"):
    onnx_deps.require(module, WHAT)
  jax2onnx = onnx_deps.require("jax2onnx", WHAT)
  from jax2onnx.plugins import plugin_system  # pylint: disable=g-import-not-at-top
  with _quiet():
    plugin_system.import_all_plugins()
  return jax2onnx, plugin_system


@contextlib.contextmanager
def _without_plugins(plugin_system, names: Sequence[str]):
  registry = plugin_system.PLUGIN_REGISTRY
  removed = {name: registry.pop(name) for name in names if name in registry}
  try:
    yield
  finally:
    registry.update(removed)


def export_function(function: Callable[[Any, Any], Any], params, video_shape: Sequence[int],
                    path: Optional[str] = None, batch: Optional[int] = None, *,
                    output_name: str = "logits", linen_plugins: bool = True,
                    model_name: str = "vivit"):
  """`function(params, video) -> outputs` as an `onnx.ModelProto`.

  Args:
    params: baked into the graph as initializers (boxed ones are unboxed).
    video_shape: `(T, H, W, C)` of one float32 example.
    path: also write the model there (None: don't).
    batch: a static batch size; None: symbolic ("B", any batch).
    linen_plugins: False traces flax.linen Dense / DenseGeneral / Einsum
      through their own jnp ops (needed for qwix models).
  """
  jax2onnx, plugin_system = _jax2onnx()
  params = nn.unbox(params)
  shape = (SYMBOLIC_BATCH if batch is None else int(batch), *video_shape)
  disabled = () if linen_plugins else LINEN_KERNEL_PLUGINS
  with _quiet(), _without_plugins(plugin_system, disabled):
    proto = jax2onnx.to_onnx(lambda video: jnp.asarray(function(params, video), jnp.float32),
                             [shape], model_name=model_name, opset=OPSET,
                             input_names=[INPUT_NAME], output_names=[output_name],
                             normalization_mode=NORMALIZATION)
  proto = onnx_graph.projections_as_matmul(proto)
  if path:
    with open(path, "wb") as f:
      f.write(proto.SerializeToString())
  return proto


def quantize_dynamic(proto, path: Optional[str] = None):
  """ONNX Runtime's dynamic int8 quantization of a float `onnx.ModelProto`
  (per-channel int8 weights; activations quantized per tensor at run time)."""
  onnx = onnx_deps.require("onnx", WHAT)
  ort_quantization = onnx_deps.require("onnxruntime.quantization", WHAT)
  with tempfile.TemporaryDirectory() as tmp:
    float_path, int8_path = os.path.join(tmp, "float.onnx"), os.path.join(tmp, "int8.onnx")
    onnx.save(proto, float_path)
    with _quiet():
      ort_quantization.quantize_dynamic(float_path, int8_path, per_channel=True,
                                        weight_type=ort_quantization.QuantType.QInt8)
    quantized_proto = onnx.load(int8_path)
  if path:
    onnx.save(quantized_proto, path)
  return quantized_proto


def _apply(model) -> Callable[[Any, Any], Any]:
  return lambda params, video: model.apply({"params": params}, video)


def export_model(model, params, video_shape: Sequence[int], path: Optional[str] = None,
                 batch: Optional[int] = None, output_name: str = "logits",
                 int8_dynamic: str = "qwix") -> Tuple[Any, str]:
  """`(onnx.ModelProto, graph)` of a Flax model (float, or a
  `quantized.QuantizedModel` with plain int8 params); `graph` says how it was
  made (module docstring). `int8_dynamic`: "qwix" (our arithmetic,
  MatMulInteger) or "onnxruntime" (the float graph of the dequantized
  weights through `quantize_dynamic`). Other arguments as `export_function`."""
  if int8_dynamic not in INT8_DYNAMIC:
    raise ValueError(f"int8_dynamic must be one of {INT8_DYNAMIC}, got {int8_dynamic!r}")
  if not isinstance(model, quantized.QuantizedModel):
    return export_function(_apply(model), params, video_shape, path, batch,
                           output_name=output_name), GRAPH_FLOAT
  dynamic = model.quantization.get("act_qtype") is not None
  if dynamic and int8_dynamic == "onnxruntime":
    float_proto = export_function(_apply(model.float_module), quantized.dequantized_params(params),
                                  video_shape, None, batch, output_name=output_name)
    return quantize_dynamic(float_proto, path), GRAPH_INT8_DYNAMIC_ORT
  proto = export_function(_apply(model), params, video_shape, None, batch,
                          output_name=output_name, linen_plugins=False)
  proto = onnx_int8.int8_matmuls_as_integer(proto)
  if path:
    with open(path, "wb") as f:
      f.write(proto.SerializeToString())
  return proto, GRAPH_INT8_DYNAMIC if dynamic else GRAPH_INT8_WEIGHT


def export_onnx(served: ServedModel, out_dir: str, batch_size: Optional[int] = None,
                int8_dynamic: str = "qwix") -> Dict[str, Any]:
  """Exports `served` into `out_dir` (module docstring); returns the signature.
  `int8_dynamic`: as `export_model`'s, for an int8_dynamic checkpoint."""
  os.makedirs(out_dir, exist_ok=True)
  model_path = os.path.join(out_dir, MODEL_FILE)
  reason = None
  if batch_size is None:
    try:
      _, graph = export_model(served.model, served.params, served.video_shape, model_path,
                              None, served.output_name, int8_dynamic)
    except Exception as e:  # pylint: disable=broad-except
      reason = f"symbolic batch failed ({type(e).__name__}: {str(e).splitlines()[0]})"
      batch_size = 1
  if batch_size is not None:
    _, graph = export_model(served.model, served.params, served.video_shape, model_path,
                            int(batch_size), served.output_name, int8_dynamic)
  batch = SYMBOLIC_BATCH if batch_size is None else int(batch_size)
  signature = {
      "format": FORMAT, "program": MODEL_FILE, "graph": graph, "opset": OPSET,
      "video": {"name": INPUT_NAME, "shape": [batch, *served.video_shape], "dtype": "float32",
                "layout": "(batch, frames, height, width, channels)"},
      "output": {"name": served.output_name, "shape": [batch, served.output_size],
                 "dtype": "float32"},
      "batch": "symbolic" if batch_size is None else "static",
      "input_spec": served.input_spec, "labels": served.labels, "model": served.model_config,
      "quantization": served.quantization,
      "jax_version": jax.__version__, "jax2onnx_version": metadata.version("jax2onnx"),
  }
  if reason:
    signature["batch_reason"] = reason
  with open(os.path.join(out_dir, SIGNATURE_FILE), "w") as f:
    json.dump(signature, f, indent=2, default=str)
  return signature
