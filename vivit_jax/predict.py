r"""Classifies video files with a model checkpoint: top-k classes per file.

    python -m vivit_jax.predict --checkpoint=CKPT_DIR a.mp4 b.webm [--top-k 5] \
        [--views 3] [--json] [--labels labels.txt]

Each file is sampled with `--views` temporal windows spread evenly over it
(default 1: the centre window), each centre-cropped; the views' softmax
probabilities are averaged. Class names come from `--labels` (one per line),
else the checkpoint's `labels`, else `class_<i>`. Input geometry and
normalisation come from the checkpoint (`vivit_jax.inference`) and can be
overridden (`--num-frames`, `--stride`, `--image-size`, ...).

A file that cannot be decoded gets one line `error: FILE: why` on stderr
(and an `"error"` entry with `--json`); the other files are still
classified. Exit status: 0 when at least one file was classified, 1 when
every file failed, 2 for bad arguments or an unusable checkpoint.
"""

import argparse
import json
import sys
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from vivit_jax import inference
from vivit_jax import video_io


def predict_video(classifier: inference.Classifier, path: str, num_views: int = 1) -> np.ndarray:
  """`(num_classes,)` mean softmax over `num_views` temporal views of `path`.

  Raises:
    video_io.VideoDecodeError: the file cannot be read (message names it).
  """
  info = video_io.probe(path)
  spec = classifier.spec
  indices = inference.clip_indices(info.num_frames, spec.num_frames,
                                   spec.stride_for(info.num_frames), num_views)
  frames = video_io.read_frames(path, indices.reshape(-1))  # (V * T, H, W, 3)
  clips = classifier.preprocess(frames).reshape(num_views, spec.num_frames,
                                                *spec.image_size, 3)
  return classifier.classify(clips).mean(axis=0)


def predict_files(classifier: inference.Classifier, paths: Sequence[str], top_k: int = 5,
                  num_views: int = 1, on_error=None) -> List[Dict[str, Any]]:
  """One result per path, in order: `{"file", "top_k": [{"label", "index",
  "probability"}]}` or `{"file", "error"}`. `on_error(message)` is called
  with each one-line error as it happens."""
  results = []
  for path in paths:
    try:
      probs = predict_video(classifier, path, num_views)
    except video_io.VideoDecodeError as e:
      message = str(e)
      if on_error is not None:
        on_error(message)
      results.append({"file": path, "error": message})
      continue
    results.append({"file": path, "top_k": classifier.top_k(probs, top_k)})
  return results


def format_result(result: Dict[str, Any]) -> str:
  """Human-readable lines for one `predict_files` result."""
  if "error" in result:
    return f"{result['file']}: error: {result['error']}"
  lines = [result["file"]]
  for rank, entry in enumerate(result["top_k"], 1):
    lines.append(f"  {rank}. {entry['label']:<32s} {entry['probability']:.4f}")
  return "\n".join(lines)


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
  """Checkpoint, labels, dtype and input-spec flags (shared with `stream`)."""
  parser.add_argument("--checkpoint", required=True, help="model checkpoint directory")
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
  return inference.load_classifier(
      args.checkpoint, labels_file=args.labels, dtype=args.dtype,
      attention_impl=args.attention_impl, num_frames=args.num_frames,
      frame_stride=args.stride, image_size=args.image_size,
      resize_short_side=args.resize_short_side, mean=args.mean, std=args.std)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      prog="python -m vivit_jax.predict", description=__doc__.split("\n\n")[0],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  add_model_flags(parser)
  parser.add_argument("videos", nargs="+", metavar="VIDEO", help="video files")
  parser.add_argument("--top-k", type=int, default=5, help="classes listed per file")
  parser.add_argument("--views", type=int, default=1, help="temporal views averaged per file")
  parser.add_argument("--json", action="store_true", help="print one JSON document")
  args = parser.parse_args(argv)
  if args.top_k < 1 or args.views < 1:
    parser.error("--top-k and --views must be >= 1")
  return args


def main(argv: Optional[Sequence[str]] = None) -> int:
  args = parse_args(argv)
  try:
    classifier = classifier_from_args(args)
    classifier.warmup(args.views)  # Fails here, once, if the model cannot run.
  except (OSError, ValueError, RuntimeError) as e:
    print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
    return 2

  def on_error(message):
    print(f"error: {message}", file=sys.stderr, flush=True)

  results = predict_files(classifier, args.videos, args.top_k, args.views, on_error)
  if args.json:
    document = {"checkpoint": args.checkpoint, "input": classifier.spec.to_json(),
                "views": args.views, "results": results}
    print(json.dumps(document, indent=2))
  else:
    for result in results:
      if "error" not in result:
        print(format_result(result))
  return 1 if all("error" in r for r in results) else 0


if __name__ == "__main__":
  sys.exit(main())
