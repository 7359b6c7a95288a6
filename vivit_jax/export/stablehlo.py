"""Serialized StableHLO (`jax.export`) of a checkpoint's inference function.

Written to OUT_DIR:

  model.stablehlo.bin   `jax.export.Exported.serialize()` of
                        `function(params, video) -> outputs` (`serving.served_model`)
  model.mlir            the same program as StableHLO text, for other runtimes
  params.npz            the parameters, flattened names `a/b/kernel`
  signature.json        shapes, dtypes and the batch dimension (a number, or
                        the symbol "b" for any batch), output name and size,
                        the input spec (preprocessing), labels, platforms

The batch dimension is symbolic (`jax.export.symbolic_shape("b")`) unless a
batch size is given, or when the model cannot be exported for a symbolic
batch; `signature.json` records which (`"batch_reason"` says why it fell
back). `load_exported(OUT_DIR)` deserializes the program and returns a
callable `video -> outputs` that runs on any of the exported platforms.
"""

import json
import os
from typing import Any, Dict, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from vivit_jax import checkpoints
from vivit_jax.common import errors
from vivit_jax.serving.served_model import ServedModel

BINARY = "model.stablehlo.bin"
MLIR = "model.mlir"
PARAMS = "params.npz"
SIGNATURE = "signature.json"
DEFAULT_PLATFORMS = ("cpu", "cuda")


def _export(served: ServedModel, batch, platforms: Sequence[str]):
  params_spec = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype),
                                       served.params)
  video_spec = jax.ShapeDtypeStruct((batch,) + tuple(served.video_shape), jnp.float32)
  return jax.export.export(jax.jit(served.function), platforms=tuple(platforms))(
      params_spec, video_spec)


def export_stablehlo(served: ServedModel, out_dir: str, batch_size: Optional[int] = None,
                     platforms: Sequence[str] = DEFAULT_PLATFORMS) -> Dict[str, Any]:
  """Exports `served` into `out_dir` (see module docstring); returns the signature."""
  os.makedirs(out_dir, exist_ok=True)
  reason = None
  if batch_size is None:
    try:
      exported = _export(served, jax.export.symbolic_shape("b")[0], platforms)
    except Exception as e:  # pylint: disable=broad-except
      reason = f"symbolic batch failed ({type(e).__name__}: {str(e).splitlines()[0]})"
      batch_size = 1
  if batch_size is not None:
    exported = _export(served, int(batch_size), platforms)
  with open(os.path.join(out_dir, BINARY), "wb") as f:
    f.write(exported.serialize())
  with open(os.path.join(out_dir, MLIR), "w") as f:
    f.write(exported.mlir_module())
  np.savez(os.path.join(out_dir, PARAMS), **checkpoints.flatten_params(served.params))
  signature = {
      "format": "jax.export", "program": BINARY, "params": PARAMS,
      "calling_convention": "program(params, video) -> output",
      "calling_convention_version": exported.calling_convention_version,
      "platforms": list(exported.platforms),
      "video": {"shape": ["b" if batch_size is None else batch_size,
                          *served.video_shape],
                "dtype": "float32", "layout": "(batch, frames, height, width, channels)"},
      "output": {"name": served.output_name,
                 "shape": ["b" if batch_size is None else batch_size, served.output_size],
                 "dtype": "float32"},
      "batch": "symbolic" if batch_size is None else "static",
      "input_spec": served.input_spec, "labels": served.labels, "model": served.model_config,
      "jax_version": jax.__version__,
  }
  if reason:
    signature["batch_reason"] = reason
  with open(os.path.join(out_dir, SIGNATURE), "w") as f:
    json.dump(signature, f, indent=2, default=str)
  return signature


class LoadedExport:
  """A deserialized export: call it with `(B, T, H, W, C)` float32 video.

  Attributes:
    exported: the `jax.export.Exported`.
    params: the parameters, nested dicts of device arrays.
    signature: the parsed `signature.json`.
  """

  def __init__(self, exported, params, signature: Dict[str, Any]):
    self.exported, self.params, self.signature = exported, params, signature

  def __call__(self, video) -> np.ndarray:
    video = jnp.asarray(video, jnp.float32)
    want = self.signature["video"]["shape"]
    got = list(video.shape)
    if len(got) != len(want) or any(w != "b" and w != g for w, g in zip(want, got)):
      raise ValueError(f"exported program takes video of shape {want}, got {got}")
    return np.asarray(self.exported.call(self.params, video))


def load_exported(path: str) -> LoadedExport:
  """Loads what `export_stablehlo` wrote (`path`: the folder or its `.bin`)."""
  folder = os.path.dirname(path) if os.path.isfile(path) else path
  signature_path = os.path.join(folder, SIGNATURE)
  if not os.path.exists(signature_path):
    raise FileNotFoundError(f"{folder} holds no {SIGNATURE}: not written by "
                            "vivit_jax.export")
  signature = errors.read_json(signature_path, "export the checkpoint again "
                                    "(python -m vivit_jax.export)")
  with open(os.path.join(folder, signature["program"]), "rb") as f:
    exported = jax.export.deserialize(bytearray(f.read()))
  with np.load(os.path.join(folder, signature["params"])) as data:
    params = checkpoints.unflatten_params({k: jnp.asarray(data[k]) for k in data.files})
  return LoadedExport(exported, params, signature)
