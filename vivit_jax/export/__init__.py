"""Exporting a model checkpoint's inference function for serving.

    vivit-export --checkpoint CKPT_DIR --output OUT_DIR \
        [--batch-size N] [--format stablehlo|saved_model|both|onnx] [--platforms cpu,cuda]

    from vivit_jax.export import export_checkpoint, load_exported
    export_checkpoint("ckpt", "out")                  # StableHLO, symbolic batch
    logits = load_exported("out")(video)              # (B, T, H, W, C) float32

`serving.served_model` builds `function(params, video) -> logits`,
`stablehlo` serializes it with `jax.export` (and loads it back), and
`saved_model` converts it to a TensorFlow SavedModel with `jax2tf` (needs
TensorFlow; nothing else here does), and `onnx` to an ONNX model with
jax2onnx (needs the `onnx` extra and jax2onnx, `common.onnx_deps`).
"""

import os
from typing import Any, Dict, Optional, Sequence

from vivit_jax.serving.served_model import ServedModel, load_served_model
from vivit_jax.export.stablehlo import (DEFAULT_PLATFORMS, LoadedExport, export_stablehlo,
                                        load_exported)

FORMATS = ("stablehlo", "saved_model", "both", "onnx")
SAVED_MODEL_DIR = "saved_model"

__all__ = ["FORMATS", "LoadedExport", "ServedModel", "export_checkpoint", "export_stablehlo",
           "load_exported", "load_served_model"]


def export_checkpoint(checkpoint_dir: str, out_dir: str, batch_size: Optional[int] = None,
                      fmt: str = "stablehlo", platforms: Sequence[str] = DEFAULT_PLATFORMS,
                      num_frames: Optional[int] = None, image_size: Optional[int] = None,
                      onnx_int8: str = "onnxruntime") -> Dict[str, Any]:
  """Exports `checkpoint_dir` to `out_dir`; returns what was written.

  `fmt`: "stablehlo" (`stablehlo.export_stablehlo`, files in `out_dir`),
  "saved_model" (`out_dir/saved_model`), "both", or "onnx"
  (`onnx.export_onnx`, files in `out_dir`). The result has `signature`
  (stablehlo), `saved_model` (its path) and `onnx` (the ONNX signature).
  `onnx_int8`: the ONNX graph of an int8_dynamic checkpoint, "onnxruntime"
  (ONNX Runtime's own dynamic int8 of the dequantized float graph: fused
  kernels, about 3x faster on the CPU) or "qwix" (our arithmetic, op by op).
  """
  if fmt not in FORMATS:
    raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
  if fmt in ("saved_model", "both"):
    from vivit_jax.export import saved_model  # pylint: disable=g-import-not-at-top
    saved_model._tensorflow()  # pylint: disable=protected-access  # fail before any work
  if fmt == "onnx":
    from vivit_jax.export import onnx  # pylint: disable=g-import-not-at-top
    onnx._jax2onnx()  # pylint: disable=protected-access  # fail before any work
  # ONNX Runtime's CPU kernels have no bfloat16 matmuls: an ONNX export of a
  # model trained in bfloat16 computes in float32 (its parameters are float32).
  served = load_served_model(checkpoint_dir, num_frames=num_frames, image_size=image_size,
                             dtype="float32" if fmt == "onnx" else None)
  written: Dict[str, Any] = {}
  if fmt in ("stablehlo", "both"):
    written["signature"] = export_stablehlo(served, out_dir, batch_size, platforms)
  if fmt in ("saved_model", "both"):
    written["saved_model"] = saved_model.export_saved_model(
        served, os.path.join(out_dir, SAVED_MODEL_DIR), batch_size, platforms)
  if fmt == "onnx":
    written["onnx"] = onnx.export_onnx(served, out_dir, batch_size, int8_dynamic=onnx_int8)
  return written
