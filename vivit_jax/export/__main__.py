"""Exports a model checkpoint's inference function for serving.

    vivit-export --checkpoint CKPT_DIR --output OUT_DIR \
        [--batch-size N] [--format stablehlo|saved_model|both|onnx] [--platforms cpu,cuda] \
        [--num-frames T --image-size S]

stablehlo: OUT_DIR/model.stablehlo.bin (`jax.export`), model.mlir,
params.npz and signature.json; load with `vivit_jax.export.load_exported`.
saved_model: OUT_DIR/saved_model (TensorFlow, via jax2tf; needs TensorFlow).
onnx: OUT_DIR/model.onnx and signature.json (jax2onnx; needs the onnx extra and
jax2onnx, docs/inference.md); run it with vivit-predict --backend onnxruntime.
Without --batch-size the batch dimension is symbolic where the model allows
(signature.json says which). Prints one line per format written.
"""

import argparse
import sys

from vivit_jax.common import errors
from vivit_jax import export


def parse_args(argv):
  parser = argparse.ArgumentParser(prog="vivit-export",
                                   description=__doc__.split("\n\n")[0])
  parser.add_argument("--checkpoint", required=True, help="model checkpoint folder")
  parser.add_argument("--output", required=True, help="folder to write")
  parser.add_argument("--batch-size", type=int, help="static batch (default: symbolic)")
  parser.add_argument("--format", default="stablehlo", choices=export.FORMATS)
  parser.add_argument("--platforms", default=",".join(export.DEFAULT_PLATFORMS),
                      help="comma-separated jax.export platforms (cpu, cuda, rocm, tpu)")
  parser.add_argument("--num-frames", type=int, help="override the checkpoint's input spec")
  parser.add_argument("--image-size", type=int, help="override the checkpoint's input spec")
  parser.add_argument("--onnx-int8", default="onnxruntime", choices=("onnxruntime", "qwix"),
                      help="--format onnx of an int8_dynamic checkpoint: ONNX Runtime's own "
                           "int8 of the float graph (default; fused, ~3x faster on the CPU) or "
                           "our arithmetic op by op (qwix)")
  return parser.parse_args(argv)


@errors.command
def main(argv=None) -> int:
  args = parse_args(sys.argv[1:] if argv is None else argv)
  platforms = tuple(p.strip() for p in args.platforms.split(",") if p.strip())
  try:
    written = export.export_checkpoint(args.checkpoint, args.output, args.batch_size,
                                       args.format, platforms, args.num_frames,
                                       args.image_size, args.onnx_int8)
  except ImportError as e:  # TensorFlow missing for a SavedModel.
    print(f"error: {e}", file=sys.stderr)
    return 2
  if "signature" in written:
    sig = written["signature"]
    print(f"stablehlo: video {sig['video']['shape']} -> {sig['output']['name']} "
          f"{sig['output']['shape']} ({sig['batch']} batch, platforms "
          f"{','.join(sig['platforms'])}) written to {args.output}")
  if "onnx" in written:
    sig = written["onnx"]
    print(f"onnx: video {sig['video']['shape']} -> {sig['output']['name']} "
          f"{sig['output']['shape']} ({sig['batch']} batch, {sig['graph']}, opset "
          f"{sig['opset']}) written to {args.output}")
  if "saved_model" in written:
    print(f"saved_model: written to {written['saved_model']}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
