r"""Classifies video files with a model checkpoint: top-k classes per file.

    vivit-predict --checkpoint=CKPT_DIR a.mp4 b.webm [--top-k 5] \
        [--views 3] [--json] [--labels labels.txt]

Each file is sampled with `--views` temporal windows spread evenly over it
(default 1: the centre window), each centre-cropped; the views' softmax
probabilities are averaged. Class names come from `--labels` (one per line),
else the checkpoint's `labels`, else `class_<i>`. Input geometry and
normalisation come from the checkpoint (`vivit_jax.serving.inference`) and can be
overridden (`--num-frames`, `--stride`, `--image-size`, ...). A model with
`class_splits` (several heads, e.g. verb + noun) is ranked per head: each
result has `heads` [{"head", "top_k"}] instead of `top_k`, printed as one
`head_<h>:` block per head.

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

from vivit_jax.common import errors
from vivit_jax.data import eval_views
from vivit_jax.serving import flags
from vivit_jax.serving import inference
from vivit_jax.serving import video_io


def predict_video(classifier: inference.Classifier, path: str, num_views: int = 1) -> np.ndarray:
  """`(num_classes,)` mean softmax over `num_views` temporal views of `path`.

  Raises:
    video_io.VideoDecodeError: the file cannot be read (message names it).
  """
  info = video_io.probe(path)
  spec = classifier.spec
  indices = eval_views.view_indices(info.num_frames, spec.num_frames,
                                    spec.stride_for(info.num_frames), num_views)
  frames = video_io.read_frames(path, indices.reshape(-1))  # (V * T, H, W, 3)
  clips = classifier.preprocess(frames).reshape(num_views, spec.num_frames,
                                                *spec.image_size, 3)
  return classifier.classify(clips).mean(axis=0)


def predict_files(classifier: inference.Classifier, paths: Sequence[str], top_k: int = 5,
                  num_views: int = 1, on_error=None) -> List[Dict[str, Any]]:
  """One result per path, in order: `{"file", "top_k": [{"label", "index",
  "probability"}]}` (several heads: `{"file", "heads": [{"head", "top_k"}]}`)
  or `{"file", "error"}`. `on_error(message)` is called
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
    if classifier.class_splits:
      results.append({"file": path, "heads": classifier.head_top_k(probs, top_k)})
    else:
      results.append({"file": path, "top_k": classifier.top_k(probs, top_k)})
  return results


def format_result(result: Dict[str, Any]) -> str:
  """Human-readable lines for one `predict_files` result."""
  if "error" in result:
    return f"{result['file']}: error: {result['error']}"
  lines = [result["file"]]
  if "heads" in result:
    for head in result["heads"]:
      lines.append(f"  {head['head']}:")
      for rank, entry in enumerate(head["top_k"], 1):
        lines.append(f"    {rank}. {entry['label']:<32s} {entry['probability']:.4f}")
    return "\n".join(lines)
  for rank, entry in enumerate(result["top_k"], 1):
    lines.append(f"  {rank}. {entry['label']:<32s} {entry['probability']:.4f}")
  return "\n".join(lines)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      prog="vivit-predict", description=__doc__.split("\n\n")[0],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  flags.add_model_flags(parser)
  parser.add_argument("videos", nargs="+", metavar="VIDEO", help="video files")
  parser.add_argument("--top-k", type=int, default=5, help="classes listed per file")
  parser.add_argument("--views", type=int, default=1, help="temporal views averaged per file")
  parser.add_argument("--json", action="store_true", help="print one JSON document")
  args = parser.parse_args(argv)
  if args.top_k < 1 or args.views < 1:
    parser.error("--top-k and --views must be >= 1")
  return args


@errors.command
def main(argv: Optional[Sequence[str]] = None) -> int:
  args = parse_args(argv)
  try:
    classifier = flags.classifier_from_args(args)
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
