"""Command-line flags every serving command shares (`predict`, `stream`)."""

import argparse

from vivit_jax.common import errors
from vivit_jax.serving import inference, onnx_backend

BACKENDS = ("jax", "onnxruntime")


def _floats(text: str):
  values = tuple(float(v) for v in text.split(","))
  if len(values) != 3:
    raise argparse.ArgumentTypeError(f"needs 3 comma-separated values, got {text!r}")
  return values


def _size(text: str):
  values = [int(v) for v in text.replace("x", ",").split(",")]
  if len(values) not in (1, 2) or min(values) < 1:
    raise argparse.ArgumentTypeError(f"needs N or H,W, got {text!r}")
  return values[0] if len(values) == 1 else tuple(values)


def add_model_flags(parser: argparse.ArgumentParser) -> None:
  """Checkpoint, backend, labels, dtype and input-spec flags."""
  parser.add_argument("--checkpoint", required=True,
                      help="model checkpoint directory (--backend onnxruntime: a folder "
                      "written by vivit-export --format onnx)")
  parser.add_argument("--backend", choices=BACKENDS, default="jax",
                      help="run the model in JAX, or an ONNX export in ONNX Runtime")
  parser.add_argument("--threads", type=int,
                      help="ONNX Runtime intra-op threads (default: one per core)")
  parser.add_argument("--labels", help="class names, one per line (overrides the checkpoint's)")
  parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"),
                      help="computation dtype (overrides model.dtype)")
  parser.add_argument("--attention-impl", choices=("xla", "cudnn", "chunked"),
                      help="attention kernel (cudnn: GPU, with a 16-bit --dtype)")
  group = parser.add_argument_group("input spec (default: from the checkpoint)")
  group.add_argument("--num-frames", type=int, help="frames per clip T")
  group.add_argument("--stride", type=int, help="source frames between sampled frames")
  group.add_argument("--image-size", type=_size, help="model input size: N or H,W")
  group.add_argument("--resize-short-side", type=int, help="short side before the centre crop")
  group.add_argument("--mean", type=_floats, help="R,G,B mean on the [0, 1] scale")
  group.add_argument("--std", type=_floats, help="R,G,B std on the [0, 1] scale")


def classifier_from_args(args: argparse.Namespace) -> inference.Classifier:
  """`inference.load_classifier` (--backend jax) or
  `onnx_backend.load_onnx_classifier` (--backend onnxruntime) with the flags
  of `add_model_flags`."""
  overrides = dict(num_frames=args.num_frames, frame_stride=args.stride,
                   image_size=args.image_size, resize_short_side=args.resize_short_side,
                   mean=args.mean, std=args.std)
  if args.backend == "onnxruntime":
    for flag, value in (("--dtype", args.dtype), ("--attention-impl", args.attention_impl)):
      if value is not None:
        raise errors.UserError(f"{flag} applies to --backend jax", flag,
                               "drop it: the ONNX export fixed the model's computation")
    return onnx_backend.load_onnx_classifier(args.checkpoint, labels_file=args.labels,
                                             threads=args.threads, **overrides)
  if onnx_backend.is_onnx_export(args.checkpoint):
    raise errors.UserError(f"{args.checkpoint} is an ONNX export, not a model checkpoint",
                           "--checkpoint", "pass --backend onnxruntime, or the checkpoint "
                           "it was exported from")
  return inference.load_classifier(
      args.checkpoint, labels_file=args.labels, dtype=args.dtype,
      attention_impl=args.attention_impl, **overrides)
