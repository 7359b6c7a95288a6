r"""Can the demo model classify a 25 fps stream live? Latency, fps, drops.

    python scripts/benchmark_stream.py                       # demo model, random weights
    python scripts/benchmark_stream.py --checkpoint=CKPT_DIR --seconds 30 --hop 4

Writes a video of moving shapes (`--size`, `--fps`, `--seconds`), replays it
in real time through `vivit_jax.serving.stream.run_stream` (a reader thread at the
source frame rate, the oldest queued frame dropped when the model falls
behind) and prints a table and one JSON line: per-prediction latency
p50 / p99 (ms), delay from frame arrival to prediction, frames per second
the model took, frames dropped, and whether it kept up (no frame dropped).

Without `--checkpoint` the model is `configs/demo_finetune.py`'s classifier
(spatio-temporal ViViT) with random weights, fed as the demo data config
feeds it (its frames, stride, size, mean and std).
"""

import argparse
import importlib.util
import json
import os
import sys
import tempfile

import av
import jax
import jax.numpy as jnp
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from vivit_jax.serving import inference  # pylint: disable=g-import-not-at-top
from vivit_jax.serving import stream
from vivit_jax.serving import video_io
from vivit_jax.models import build_model


def demo_classifier(dtype=None, attention_impl=None) -> inference.Classifier:
  """The demo fine-tuning config's model with random weights, and its input spec."""
  spec = importlib.util.spec_from_file_location(
      "demo_finetune", os.path.join(REPO, "configs", "demo_finetune.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  model_config = config.model.to_dict()
  if dtype:
    model_config["dtype"] = dtype
  if attention_impl:
    model_config["attention_impl"] = attention_impl
  data = config.data
  input_spec = inference.InputSpec(
      num_frames=data.num_frames, frame_stride=data.stride,
      image_size=(data.image_size, data.image_size), resize_short_side=data.resize_short_side,
      mean=tuple(data.mean), std=tuple(data.std))
  model = build_model(model_config)
  video = jnp.zeros((1, data.num_frames, data.image_size, data.image_size, 3))
  params = jax.jit(model.init)(jax.random.PRNGKey(0), video)["params"]
  labels = [f"class_{i}" for i in range(model_config["num_classes"])]
  return inference.Classifier(model, params, input_spec, labels)


def write_moving_shapes(path: str, seconds: float, fps: int, width: int, height: int) -> str:
  """An H.264 mp4 of a bright square bouncing over a noisy background."""
  rng = np.random.default_rng(0)
  background = rng.integers(30, 90, (height, width, 3), np.uint8)
  side = max(min(width, height) // 5, 4)
  with av.open(path, "w") as container:
    stream_ = container.add_stream("libx264", rate=fps)
    stream_.width, stream_.height, stream_.pix_fmt = width, height, "yuv420p"
    stream_.options = {"g": str(fps)}
    for i in range(int(seconds * fps)):
      frame = background.copy()
      x = int((width - side) * (0.5 + 0.5 * np.sin(i / fps * 2.0)))
      y = int((height - side) * (0.5 + 0.5 * np.cos(i / fps * 1.3)))
      frame[y:y + side, x:x + side] = (230, 200, 40)
      for packet in stream_.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
        container.mux(packet)
    for packet in stream_.encode():
      container.mux(packet)
  return path


def table(rows) -> str:
  width = max(len(name) for name, _ in rows)
  return "\n".join(f"| {name:<{width}s} | {value} |" for name, value in rows)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--checkpoint", help="model checkpoint (default: demo model, random)")
  parser.add_argument("--seconds", type=float, default=20.0, help="length of the test video")
  parser.add_argument("--fps", type=int, default=25, help="frame rate of the test video")
  parser.add_argument("--size", default="160x120", help="test video WIDTHxHEIGHT")
  parser.add_argument("--hop", type=int, default=4, help="frames between predictions")
  parser.add_argument("--queue-size", type=int, default=8, help="frames buffered")
  parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"))
  parser.add_argument("--attention-impl", choices=("xla", "cudnn"))
  parser.add_argument("--json-out", help="also write the JSON result here")
  args = parser.parse_args(argv)
  width, height = (int(v) for v in args.size.lower().split("x"))

  if args.checkpoint:
    classifier = inference.load_classifier(args.checkpoint, dtype=args.dtype,
                                           attention_impl=args.attention_impl)
  else:
    classifier = demo_classifier(args.dtype, args.attention_impl)
  classifier.warmup()
  spec = classifier.spec
  with tempfile.TemporaryDirectory() as tmp:
    video = write_moving_shapes(os.path.join(tmp, "stream.mp4"), args.seconds, args.fps,
                                width, height)
    with video_io.LiveSource(video) as source:
      summary = stream.run_stream(
          source.frames(), classifier.classify, classifier.preprocess, spec.num_frames,
          spec.stride_for(None), args.hop, realtime=True, drop_when_full=True,
          queue_size=args.queue_size, source_fps=source.fps)

  budget_ms = args.hop / args.fps * 1e3
  keeps_up = summary.frames_dropped == 0
  load = os.getloadavg()
  result = {
      "model": "checkpoint " + args.checkpoint if args.checkpoint else "demo_finetune (random)",
      "input": spec.to_json(), "video": f"{width}x{height} @ {args.fps} fps, {args.seconds:g} s",
      "backend": jax.default_backend(), "cpus": os.cpu_count(),
      "load_average_1m": round(load[0], 2), "budget_ms_per_prediction": budget_ms,
      "keeps_up": keeps_up, **summary.to_json()}

  def ms(value):
    return "n/a" if value is None else f"{value:.1f} ms"
  print(table([
      ("model", result["model"]),
      ("video", result["video"] + f", hop {args.hop}, window {summary.window}"),
      ("backend / cpus / load", f"{result['backend']} / {result['cpus']} / "
                                f"{result['load_average_1m']}"),
      ("latency p50 / p99", f"{ms(summary.latency_p50_ms)} / {ms(summary.latency_p99_ms)}"
                            f" (budget {budget_ms:.0f} ms per prediction)"),
      ("delay p50 / p99", f"{ms(summary.delay_p50_ms)} / {ms(summary.delay_p99_ms)}"),
      ("effective fps", f"{summary.fps:.1f} (source {args.fps})"),
      ("predictions", str(summary.predictions)),
      ("frames dropped", f"{summary.frames_dropped} of {summary.frames_read}"),
      ("keeps up", "yes" if keeps_up else "no"),
  ]))
  print(json.dumps(result))
  if args.json_out:
    with open(args.json_out, "w") as f:
      json.dump(result, f, indent=2)
  return 0


if __name__ == "__main__":
  sys.exit(main())
