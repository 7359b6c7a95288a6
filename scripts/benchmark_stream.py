r"""Can the demo model classify a live stream? Highest sustained fps, latency, drops.

    python scripts/benchmark_stream.py                       # demo model (random) + its int8
    python scripts/benchmark_stream.py --checkpoint=CKPT_DIR --checkpoint=INT8_DIR --no-compress
    python scripts/benchmark_stream.py --fps 25 --single      # one replay at 25 fps, as before

Writes a video of moving shapes (`--size`, `--seconds`), decodes it once,
then replays its frames in real time through `vivit_jax.serving.stream.run_stream`
(a reader thread paced at the source frame rate, the oldest queued frame
dropped when the model falls behind; decoding is not in the loop) with a
prediction every `--hop` frames. For each model it finds the highest source
frame rate it sustains with no frame dropped: rates `--fps`, 2x, 4x, ...
(all models at each rate in turn, so machine load hits all alike) up to
`--max-fps`, then `--bisect` halvings between the last rate kept up with
and the first that dropped. Prints a table and one JSON line: per model
the highest sustained fps and, at that rate, latency p50 / p99 (model
call plus preparing the window's new frames) and delay p50 / p99 (frame
arrival to prediction), in ms.

Models: each `--checkpoint` (repeatable) and, unless `--no-compress`, its
int8 versions (`python -m vivit_jax.compress`, int8_weight and
int8_dynamic, written to a temporary folder). Without `--checkpoint` the
model is `configs/demo_finetune.py`'s classifier (spatio-temporal ViViT)
with random weights, fed as the demo data config feeds it.
"""

import argparse
import importlib.util
import json
import os
import sys
import tempfile
from typing import Any, Dict, List, Sequence

import av
import jax
import jax.numpy as jnp
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from vivit_jax.checkpoints.input_spec import InputSpec  # pylint: disable=g-import-not-at-top
from vivit_jax.serving import inference
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
  input_spec = InputSpec(
      num_frames=data.num_frames, frame_stride=data.stride,
      image_size=(data.image_size, data.image_size), resize_short_side=data.resize_short_side,
      mean=tuple(data.mean), std=tuple(data.std))
  model = build_model(model_config)
  video = jnp.zeros((1, data.num_frames, data.image_size, data.image_size, 3))
  params = jax.jit(model.init)(jax.random.PRNGKey(0), video)["params"]
  labels = [f"class_{i}" for i in range(model_config["num_classes"])]
  classifier = inference.Classifier(model, params, input_spec, labels)
  classifier.model_config = model_config
  return classifier


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


def save_demo_checkpoint(directory: str) -> str:
  """`demo_classifier()`'s model and random weights as a model checkpoint."""
  from vivit_jax import checkpoints  # pylint: disable=g-import-not-at-top
  classifier = demo_classifier()
  config = {"model": classifier.model_config, "input": classifier.spec.to_json(),
            "labels": classifier.labels, "source": {"format": "random demo_finetune"}}
  return checkpoints.save_model_checkpoint(directory, classifier.params, config)


def decoded_frames(path: str) -> List[np.ndarray]:
  with video_io.LiveSource(path) as source:
    return [frame for _, _, frame in source.frames()]


def replay(classifier, frames: Sequence[np.ndarray], fps: float, hop: int,
           queue_size: int) -> stream.StreamSummary:
  """One real-time replay of `frames` at `fps`, dropping the oldest when behind."""
  spec = classifier.spec
  timed = ((i, i / fps, frame) for i, frame in enumerate(frames))
  return stream.run_stream(timed, classifier.classify, classifier.preprocess, spec.num_frames,
                           spec.stride_for(None), hop, realtime=True, drop_when_full=True,
                           queue_size=queue_size, source_fps=fps)


def max_sustained_fps(classifiers: Dict[str, Any], frames_for, start_fps: float,
                      max_fps: float, bisect: int, hop: int, queue_size: int,
                      log=print) -> Dict[str, Dict[str, Any]]:
  """Per model: `{"max_fps", "summary" (at max_fps, or None), "trials"}`."""
  state = {name: {"max_fps": None, "summary": None, "fail_fps": None, "trials": []}
           for name in classifiers}

  def trial(name, fps):
    summary = replay(classifiers[name], frames_for(fps), fps, hop, queue_size)
    kept = summary.frames_dropped == 0
    state[name]["trials"].append({**summary.to_json(), "rate": fps, "kept_up": kept})
    log(f"  {name}: {fps:.0f} fps -> {'kept up' if kept else 'dropped'} "
        f"{summary.frames_dropped}/{summary.frames_read}, latency p50 "
        f"{summary.latency_p50_ms or 0:.1f} ms")
    if kept:
      state[name]["max_fps"], state[name]["summary"] = fps, summary
    else:
      state[name]["fail_fps"] = fps
    return kept

  fps, alive = start_fps, list(classifiers)
  while alive and fps <= max_fps:
    alive = [name for name in alive if trial(name, fps)]
    fps *= 2
  for name in classifiers:
    low, high = state[name]["max_fps"], state[name]["fail_fps"]
    for _ in range(bisect if low and high else 0):
      middle = round((low + high) / 2)
      if trial(name, middle):
        low = middle
      else:
        high = middle
  return state


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--checkpoint", action="append", default=[],
                      help="model checkpoint (repeatable; default: demo model, random)")
  parser.add_argument("--no-compress", action="store_true",
                      help="do not add int8 versions of the checkpoints")
  parser.add_argument("--seconds", type=float, default=6.0, help="stream length per trial")
  parser.add_argument("--fps", type=int, default=25, help="first (or --single) source rate")
  parser.add_argument("--max-fps", type=int, default=1600, help="highest rate tried")
  parser.add_argument("--bisect", type=int, default=2, help="halvings past the doubling")
  parser.add_argument("--single", action="store_true", help="one replay at --fps only")
  parser.add_argument("--size", default="160x120", help="test video WIDTHxHEIGHT")
  parser.add_argument("--hop", type=int, default=4, help="frames between predictions")
  parser.add_argument("--queue-size", type=int, default=8, help="frames buffered")
  parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"))
  parser.add_argument("--attention-impl", choices=("xla", "cudnn", "chunked"))
  parser.add_argument("--json-out", help="also write the JSON result here")
  args = parser.parse_args(argv)
  width, height = (int(v) for v in args.size.lower().split("x"))

  with tempfile.TemporaryDirectory() as tmp:
    checkpoints_ = list(args.checkpoint) or [save_demo_checkpoint(os.path.join(tmp, "demo"))]
    models = {}
    for path in checkpoints_:
      name = os.path.basename(os.path.normpath(path))
      models[name if name not in models else path] = path
      if not args.no_compress:
        from vivit_jax.compress import __main__ as compress_cli  # pylint: disable=g-import-not-at-top
        for method in ("int8_weight", "int8_dynamic"):
          out = os.path.join(tmp, f"{name}-{method}")
          compress_cli.compress_checkpoint(path, out, method, check_clips=0, progress=False)
          models[f"{name} {method}"] = out
    classifiers = {}
    for name, path in models.items():
      classifiers[name] = inference.load_classifier(path, dtype=args.dtype,
                                                    attention_impl=args.attention_impl)
      classifiers[name].warmup()
    max_frames = int(args.seconds * (args.fps if args.single else args.max_fps))
    video = write_moving_shapes(os.path.join(tmp, "stream.mp4"), max_frames / 25.0, 25,
                                width, height)
    frames = decoded_frames(video)
  frames_for = lambda fps: frames[:max(int(args.seconds * fps), 1)]
  load_before = os.getloadavg()[0]
  if args.single:
    found = {name: {"max_fps": None, "summary": replay(c, frames_for(args.fps), args.fps,
                                                       args.hop, args.queue_size),
                    "trials": []} for name, c in classifiers.items()}
    for entry in found.values():
      if entry["summary"].frames_dropped == 0:
        entry["max_fps"] = args.fps
  else:
    found = max_sustained_fps(classifiers, frames_for, args.fps, args.max_fps, args.bisect,
                              args.hop, args.queue_size)

  def ms(value):
    return "n/a" if value is None else f"{value:.1f}"
  spec = next(iter(classifiers.values())).spec
  result = {"video": f"{width}x{height}, {args.seconds:g} s per trial", "hop": args.hop,
            "input": spec.to_json(), "backend": jax.default_backend(), "cpus": os.cpu_count(),
            "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "models": {}}
  lines = [f"| {'model':<28} | {'max fps (no drops)':>18} | {'latency p50/p99 ms':>18} | "
           f"{'delay p50/p99 ms':>16} |", "|" + "|".join("-" * n for n in (30, 20, 20, 18)) + "|"]
  for name, entry in found.items():
    summary = entry["summary"]
    row = {"checkpoint": models[name], "max_sustained_fps": entry["max_fps"],
           "at_max_fps": summary.to_json() if summary else None, "trials": entry["trials"]}
    result["models"][name] = row
    lat = f"{ms(summary.latency_p50_ms)} / {ms(summary.latency_p99_ms)}" if summary else "n/a"
    delay = f"{ms(summary.delay_p50_ms)} / {ms(summary.delay_p99_ms)}" if summary else "n/a"
    fps = "none" if entry["max_fps"] is None else f"{entry['max_fps']:.0f}"
    lines.append(f"| {name:<28} | {fps:>18} | {lat:>18} | {delay:>16} |")
  print("\n".join(lines))
  print(f"hop {args.hop}, window {spec.num_frames} x stride {spec.stride_for(None)}, "
        f"{result['cpus']} cpus, load average {result['load_average_1m']}")
  print(json.dumps({k: v for k, v in result.items() if k != "models"}
                   | {"max_sustained_fps": {n: r["max_sustained_fps"]
                                            for n, r in result["models"].items()}}))
  if args.json_out:
    with open(args.json_out, "w") as f:
      json.dump(result, f, indent=2)
  return 0


if __name__ == "__main__":
  sys.exit(main())
