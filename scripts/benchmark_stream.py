r"""Can a model classify a live stream? Highest sustained fps, latency, drops.

    python scripts/benchmark_stream.py                       # demo model (random) + its int8
    python scripts/benchmark_stream.py --preset S            # VideoMAE-S 16x224, hop 16, variants
    python scripts/benchmark_stream.py --checkpoint=CKPT_DIR --checkpoint=INT8_DIR --no-compress
    python scripts/benchmark_stream.py --fps 25 --single      # one replay at 25 fps, as before

Writes a video of moving shapes (`--size`, `--seconds`), decodes it once,
then replays its frames in real time through `vivit_jax.serving.stream.run_stream`
(a reader thread paced at the source frame rate, the oldest queued frame
dropped when the model falls behind; decoding is not in the loop) with a
prediction every `--hop` frames. For each model it finds the highest source
frame rate it sustains with no frame dropped: rates `--fps`, 2x, 4x, ...
(all models at each rate in turn, so machine load hits all alike) up to
`--max-fps` (a model that drops at `--fps` is tried at halves of it down to
1 fps), then `--bisect` halvings between the last rate kept up with and the
first that dropped. Prints a table and one JSON line: per model
the highest sustained fps and, at that rate, latency p50 / p99 (model
call plus preparing the window's new frames) and delay p50 / p99 (frame
arrival to prediction), in ms.

Models: each `--checkpoint` (repeatable) and, unless `--no-compress`, its
compressed versions (`python -m vivit_jax.compress`, written to a temporary
folder): `--variants`, comma-separated, of int8_weight, int8_dynamic,
tome (token merging `--token-merging`, float32) and int8_tome (both).
Without `--checkpoint` the model is `--preset`: "demo" (default) is
`configs/demo_finetune.py`'s classifier (spatio-temporal ViViT) with random
weights, fed as the demo data config feeds it; "S" / "B" are VideoMAE-S / -B
classifiers 16x224 (random weights from transformers through our converter,
chunked attention, 16 frames at stride 4, hop 16, a 320x240 source). The
load on the machine is recorded (`machine_load`); a loaded run says so.
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
sys.path.insert(0, os.path.join(REPO, "scripts"))

import machine_load  # pylint: disable=g-import-not-at-top,wrong-import-position

from vivit_jax.checkpoints.input_spec import InputSpec  # pylint: disable=g-import-not-at-top
from vivit_jax.serving import inference
from vivit_jax.serving import stream
from vivit_jax.serving import video_io
from vivit_jax.models import build_model, token_merging


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


VARIANT_METHODS = {"int8_weight": "int8_weight", "int8_dynamic": "int8_dynamic", "tome": None,
                   "int8_tome": "int8_dynamic"}  # variant -> vivit-compress --method


def save_videomae_checkpoint(directory: str, preset: str) -> str:
  """A VideoMAE classifier 16x224 with random weights (transformers, converted)
  as a model checkpoint: chunked attention, 16 frames at stride 4, 400 classes."""
  import benchmark_cpu_inference as race  # pylint: disable=g-import-not-at-top
  from vivit_jax import checkpoints  # pylint: disable=g-import-not-at-top
  _, conversion, _ = race.random_videomae(preset, os.path.dirname(directory))
  config = conversion.checkpoint_config()
  config["model"]["attention_impl"] = "chunked"
  config["input"] = InputSpec(num_frames=16, frame_stride=4, image_size=(224, 224),
                              resize_short_side=224, mean=(0.485, 0.456, 0.406),
                              std=(0.229, 0.224, 0.225)).to_json()
  return checkpoints.save_model_checkpoint(directory, conversion.params, config)


def compressed_variants(path: str, name: str, variants: Sequence[str],
                        merging: Sequence[int], folder: str) -> Dict[str, str]:
  """`{"<name> <variant>": checkpoint}` written by `vivit-compress` into `folder`."""
  from vivit_jax.compress import __main__ as compress_cli  # pylint: disable=g-import-not-at-top
  out = {}
  for variant in variants:
    tome = tuple(merging) if variant.endswith("tome") else None
    target = os.path.join(folder, f"{name}-{variant}")
    compress_cli.compress_checkpoint(path, target, VARIANT_METHODS[variant], check_clips=0,
                                     progress=False, token_merging=tome)
    out[f"{name} {variant}"] = target
  return out


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
    kept = summary.frames_dropped == 0 and summary.predictions > 0
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
  for name in classifiers:  # dropped at the first rate: halve down to 1 fps
    fps = start_fps / 2
    while state[name]["max_fps"] is None and fps >= 1:
      trial(name, round(fps))
      fps /= 2
  for name in classifiers:
    low, high = state[name]["max_fps"], state[name]["fail_fps"]
    for _ in range(bisect if low and high else 0):
      middle = round((low + high) / 2)
      if middle in (low, high):
        break
      if trial(name, middle):
        low = middle
      else:
        high = middle
  return state


MIN_PREDICTIONS = 8  # per trial, whatever --seconds and the rate
MAX_DECODED_FRAMES = 400  # kept in memory (320x240: 92 MB)
# Per --preset: what an unset flag means.
PRESET_DEFAULTS = {
    "demo": dict(variants="int8_weight,int8_dynamic", seconds=6.0, size="160x120", hop=4),
    "S": dict(variants="int8_dynamic,tome,int8_tome", seconds=16.0, size="320x240", hop=16),
    "B": dict(variants="int8_dynamic,tome,int8_tome", seconds=16.0, size="320x240", hop=16),
}


def parse_args(argv):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--preset", default="demo", choices=sorted(PRESET_DEFAULTS),
                      help="model without --checkpoint, and the defaults below")
  parser.add_argument("--checkpoint", action="append", default=[],
                      help="model checkpoint (repeatable; default: --preset, random weights)")
  parser.add_argument("--no-compress", action="store_true",
                      help="do not add compressed versions of the checkpoints")
  parser.add_argument("--variants", help=f"comma-separated, of {', '.join(VARIANT_METHODS)} "
                      "(default: demo int8_weight,int8_dynamic; S/B int8_dynamic,tome,int8_tome)")
  parser.add_argument("--token-merging", default="96",
                      help="ToMe r per block, or R0,R1,... (the tome variants; default 96)")
  parser.add_argument("--seconds", type=float, help="stream length per trial (6; S/B 16)")
  parser.add_argument("--fps", type=int, default=25, help="first (or --single) source rate")
  parser.add_argument("--max-fps", type=int, default=1600, help="highest rate tried")
  parser.add_argument("--bisect", type=int, default=2, help="halvings past the doubling")
  parser.add_argument("--single", action="store_true", help="one replay at --fps only")
  parser.add_argument("--size", help="test video WIDTHxHEIGHT (160x120; S/B 320x240)")
  parser.add_argument("--hop", type=int, help="frames between predictions (4; S/B 16)")
  parser.add_argument("--queue-size", type=int,
                      help="frames buffered (default max(8, 2 x hop))")
  parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"))
  parser.add_argument("--attention-impl", choices=("xla", "cudnn", "chunked"))
  parser.add_argument("--json-out", help="also write the JSON result here")
  args = parser.parse_args(argv)
  for key, value in PRESET_DEFAULTS[args.preset].items():
    if getattr(args, key) is None:
      setattr(args, key, value)
  args.queue_size = args.queue_size or max(8, 2 * args.hop)
  args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
  unknown = sorted(set(args.variants) - set(VARIANT_METHODS))
  if unknown:
    parser.error(f"unknown variant(s) {unknown}; valid: {', '.join(VARIANT_METHODS)}")
  return args


def result_table(found, models, args, spec, load_report) -> Dict[str, Any]:
  """Prints the table; returns the JSON result."""
  def ms(value):
    return "n/a" if value is None else f"{value:.1f}"
  result = {"video": f"{args.size}, {args.seconds:g} s per trial", "hop": args.hop,
            "queue_size": args.queue_size, "input": spec.to_json(),
            "backend": jax.default_backend(), "cpus": os.cpu_count(),
            "token_merging": args.token_merging, "machine": load_report, "models": {}}
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
        f"queue {args.queue_size} frames, {args.size} source")
  print(machine_load.describe(load_report))
  print(json.dumps({k: v for k, v in result.items() if k != "models"}
                   | {"max_sustained_fps": {n: r["max_sustained_fps"]
                                            for n, r in result["models"].items()}}))
  return result


def main(argv=None) -> int:
  args = parse_args(argv)
  width, height = (int(v) for v in args.size.lower().split("x"))
  merging = token_merging.parse(args.token_merging)
  with tempfile.TemporaryDirectory() as tmp:
    if args.checkpoint:
      checkpoints_ = list(args.checkpoint)
    elif args.preset == "demo":
      checkpoints_ = [save_demo_checkpoint(os.path.join(tmp, "demo"))]
    else:
      checkpoints_ = [save_videomae_checkpoint(os.path.join(tmp, f"videomae-{args.preset}"),
                                               args.preset)]
    models = {}
    for path in checkpoints_:
      name = os.path.basename(os.path.normpath(path))
      models[name if name not in models else path] = path
      if not args.no_compress:
        models.update(compressed_variants(path, name, args.variants, merging, tmp))
    classifiers = {}
    for name, path in models.items():
      classifiers[name] = inference.load_classifier(path, dtype=args.dtype,
                                                    attention_impl=args.attention_impl)
      classifiers[name].warmup()
    max_frames = int(args.seconds * (args.fps if args.single else args.max_fps))
    video = write_moving_shapes(os.path.join(tmp, "stream.mp4"),
                                min(max_frames, MAX_DECODED_FRAMES) / 25.0, 25, width, height)
    frames = decoded_frames(video)
  spec = next(iter(classifiers.values())).spec
  # At least MIN_PREDICTIONS per trial; a trial longer than the decoded clip
  # replays it in a loop.
  least = (spec.num_frames - 1) * spec.stride_for(None) + 1 + MIN_PREDICTIONS * args.hop
  frames_for = lambda fps: [frames[i % len(frames)]
                            for i in range(max(int(args.seconds * fps), least))]
  with machine_load.watch() as load:
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
  result = result_table(found, models, args, spec, load.report())
  if args.json_out:
    with open(args.json_out, "w") as f:
      json.dump(result, f, indent=2)
  return 0


if __name__ == "__main__":
  sys.exit(main())
