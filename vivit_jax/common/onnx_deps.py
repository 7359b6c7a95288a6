"""The optional ONNX packages, imported where they are used.

`vivit-export --format onnx` needs onnx, onnx-ir, onnxruntime and jax2onnx;
`--backend onnxruntime` (predict, stream) needs onnxruntime. The first three
are the `onnx` extra of setup.py. jax2onnx is installed apart, without its
dependencies (`INSTALL`): its metadata pins orbax-checkpoint below what this
package needs and lists equinox, netron, orbax-export, dm-pix and
huggingface-hub, none of which the export imports. `JAX2ONNX` is the one
home of its pin; the Makefile's install rule reads it from this file.
"""

import importlib
from types import ModuleType

from vivit_jax.common import errors

JAX2ONNX = "jax2onnx==0.17.1"
INSTALL = f"pip install -e '.[onnx]' && pip install --no-deps {JAX2ONNX} (make install does both)"


def require(module: str, what: str) -> ModuleType:
  """`import module`, or a `UserError` naming `what` needs it and `INSTALL`."""
  try:
    return importlib.import_module(module)
  except ImportError as e:
    raise errors.UserError(f"{module} is not installed ({e})", what, INSTALL) from None
