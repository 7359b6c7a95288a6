"""Input-pipeline throughput: clips/s (and per CPU core) for every source.

    python scripts/benchmark_input.py --output benchmark_input.json

Generates its own data in a temp dir: `--num_videos` h264 mp4s of
`--frames_per_video` frames at 340x256 (a textured scene panning plus noise,
so JPEG and h264 work about as hard as on real video), converted to DMVR
TFRecords at short side 256, and the TFDS builder `vivit_demo_motion/bench256`
(64 frames at 256x256). Each pipeline produces training clips of
`--num_frames` x 224 x 224 (stride 2, random resized crop, flip; one extra
row adds colour jitter + RandAugment), float32; rows "..._uint8" emit uint8 (the
step normalises on the device) and "video_list_threads2" decodes with 2 PyAV
threads per stream, each measured next to its float32 / 1-thread twin. The baseline is the loop
VideoMAE-style loaders run per video: PyAV decodes from the start up to the
last needed frame, then a per-frame crop + resize (PIL) and normalisation, in
one process. Time to first batch includes building the iterator. Besides
clips/s per core (wall-clock rate / cores), "clips per CPU-second" divides by
the CPU time the benchmark process used, which other jobs on a shared machine
do not distort.
"""

import argparse
import json
import os
import resource
import sys
import tempfile
import time

import av
import numpy as np
from PIL import Image

from vivit_jax import data
from vivit_jax.data import make_tfrecords
from vivit_jax.data import pyav_decode


def cpu_seconds() -> float:
  """CPU time of this process, all threads: clips per CPU-second stays
  meaningful when other jobs share the machine."""
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_utime + usage.ru_stime


def cpu_cores() -> int:
  return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def scene_video(num_frames: int, height: int, width: int, seed: int) -> np.ndarray:
  """`(T, H, W, 3)` uint8: a smooth random texture panning right, plus noise."""
  rng = np.random.default_rng(seed)
  coarse = rng.uniform(0, 255, (height // 16 + 2, (width + 4 * num_frames) // 16 + 2, 3))
  texture = np.asarray(Image.fromarray(coarse.astype(np.uint8)).resize(
      (coarse.shape[1] * 16, coarse.shape[0] * 16), Image.BICUBIC))
  frames = np.stack([texture[:height, 4 * t:4 * t + width] for t in range(num_frames)])
  noise = rng.integers(-8, 9, frames.shape, dtype=np.int16)
  return np.clip(frames.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def write_videos(directory: str, num_videos: int, num_frames: int) -> str:
  entries = []
  for i in range(num_videos):
    path = os.path.join(directory, f"video_{i:03d}.mp4")
    with av.open(path, mode="w") as container:
      stream = container.add_stream("libx264", rate=25)
      stream.width, stream.height, stream.pix_fmt = 340, 256, "yuv420p"
      stream.options = {"crf": "23", "preset": "veryfast"}
      for frame in scene_video(num_frames, 256, 340, seed=i):
        for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
          container.mux(packet)
      for packet in stream.encode():
        container.mux(packet)
    entries.append(f"{path} {i % 10}\n")
  list_path = os.path.join(directory, "videos.txt")
  with open(list_path, "w") as f:
    f.writelines(entries)
  return list_path


def measure_pipeline(name: str, config: dict, batch_size: int, seconds: float) -> dict:
  start = time.perf_counter()
  it = data.create_iterator(config, train=True, batch_size=batch_size, seed=0)
  next(it)
  first_batch = time.perf_counter() - start
  for _ in range(2):  # Let autotuning settle.
    next(it)
  clips, start, cpu_start = 0, time.perf_counter(), cpu_seconds()
  while time.perf_counter() - start < seconds:
    clips += len(next(it)["video"])
  elapsed, cpu = time.perf_counter() - start, cpu_seconds() - cpu_start
  it.close()
  return {"source": name, "clips_per_s": clips / elapsed,
          "clips_per_s_per_core": clips / elapsed / cpu_cores(),
          "clips_per_cpu_s": clips / cpu, "time_to_first_batch_s": first_batch,
          "clips": clips, "cores": cpu_cores()}


def baseline_clip(path: str, rng, num_frames: int, stride: int, size: int, mean, std):
  """One training clip the straightforward way (decode from frame 0)."""
  with av.open(path) as container:
    stream = container.streams.video[0]
    length = stream.frames
    start = int(rng.integers(0, max(length - (num_frames - 1) * stride, 1)))
    wanted = set(range(start, start + num_frames * stride, stride))
    frames = []
    for index, frame in enumerate(container.decode(stream)):
      if index in wanted:
        frames.append(frame.to_image())
      if len(frames) == num_frames:
        break
  width, height = frames[0].size
  area = width * height * rng.uniform(0.08, 1.0)
  ratio = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
  w = int(min(width, round(np.sqrt(area * ratio))))
  h = int(min(height, round(np.sqrt(area / ratio))))
  x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
  flip = rng.uniform() < 0.5
  clip = []
  for image in frames:
    image = image.resize((size, size), Image.BILINEAR, box=(x, y, x + w, y + h))
    if flip:
      image = image.transpose(Image.FLIP_LEFT_RIGHT)
    clip.append(np.asarray(image))
  clip = np.stack(clip).astype(np.float32) / 255.0
  return (clip - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)


def measure_baseline(paths, seconds: float, num_frames: int, size: int) -> dict:
  rng = np.random.default_rng(0)
  config = data.default_data_config()
  start = time.perf_counter()
  baseline_clip(paths[0], rng, num_frames, 2, size, config.mean, config.std)
  first = time.perf_counter() - start
  clips, start, cpu_start = 0, time.perf_counter(), cpu_seconds()
  while time.perf_counter() - start < seconds:
    baseline_clip(paths[clips % len(paths)], rng, num_frames, 2, size, config.mean,
                  config.std)
    clips += 1
  elapsed, cpu = time.perf_counter() - start, cpu_seconds() - cpu_start
  return {"source": "baseline: PyAV decode loop (1 process)", "clips_per_s": clips / elapsed,
          "clips_per_s_per_core": clips / elapsed, "clips_per_cpu_s": clips / cpu,
          "time_to_first_batch_s": first, "clips": clips, "cores": 1}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--output", default="", help="write results as JSON here")
  parser.add_argument("--num_videos", type=int, default=32)
  parser.add_argument("--frames_per_video", type=int, default=64)
  parser.add_argument("--num_frames", type=int, default=16)
  parser.add_argument("--image_size", type=int, default=224)
  parser.add_argument("--batch_size", type=int, default=8)
  parser.add_argument("--seconds", type=float, default=20.0, help="per measurement")
  parser.add_argument("--sources", default="tfrecord,tfrecord_randaug,tfds,video_list,"
                      "baseline")
  args = parser.parse_args(argv)
  sources = args.sources.split(",")
  results, timings = [], {}
  with tempfile.TemporaryDirectory() as directory:
    start = time.perf_counter()
    list_path = write_videos(directory, args.num_videos, args.frames_per_video)
    timings["write_mp4_s"] = time.perf_counter() - start
    start = time.perf_counter()
    summary = make_tfrecords.write_tfrecords(list_path, os.path.join(directory, "tfrecords"),
                                             num_shards=4, short_side=256, workers=0)
    timings["convert_to_tfrecord_s"] = time.perf_counter() - start
    common = dict(num_classes=10, num_frames=args.num_frames, stride=2,
                  image_size=args.image_size, resize_short_side=256, crop="random_resized",
                  flip=True, probe_videos=2)
    configs = {
        "tfrecord": dict(common, source="tfrecord", train_files=summary["pattern"]),
        "tfrecord_randaug": dict(common, source="tfrecord", train_files=summary["pattern"],
                                 color_jitter=0.4, rand_augment_layers=2),
        "tfds": dict(common, source="tfds", tfds_name="vivit_demo_motion/bench256",
                     tfds_data_dir=os.path.join(directory, "tfds"), num_classes=4),
        "video_list": dict(common, source="video_list", train_list=list_path),
    }
    # Levers (docs/data.md): the same pipelines emitting uint8 (normalised on
    # the device inside the step), and PyAV with 2 decoder threads per stream.
    for name in ("tfrecord", "tfrecord_randaug", "video_list"):
      configs[f"{name}_uint8"] = dict(configs[name], dtype="uint8")
    configs["video_list_threads2"] = configs["video_list"]
    configs["tfrecord_randaug_uint8_devjitter"] = dict(configs["tfrecord_randaug_uint8"],
                                                       color_jitter_on_device=True)
    names = {"tfrecord": "tfrecord (JPEG, short side 256)",
             "tfrecord_randaug": "tfrecord + colour jitter + RandAugment(2, 9)",
             "tfds": "tfds vivit_demo_motion/bench256 (JPEG 256x256)",
             "video_list": "video_list (PyAV in tf.data)"}
    for name in ("tfrecord", "tfrecord_randaug", "video_list"):
      names[f"{name}_uint8"] = names[name] + ", uint8 out"
    names["video_list_threads2"] = names["video_list"] + ", 2 decoder threads"
    names["tfrecord_randaug_uint8_devjitter"] = names["tfrecord_randaug"] + (
        ", uint8 out, jitter on device")
    for source in sources:
      if source == "baseline":
        paths = [line.split()[0] for line in open(list_path)]
        results.append(measure_baseline(paths, args.seconds, args.num_frames,
                                        args.image_size))
      else:
        if source == "tfds":
          start = time.perf_counter()
          data.build_source(data.resolve_data_config(configs["tfds"]), True)
          timings["tfds_prepare_s"] = time.perf_counter() - start
        pyav_decode.DECODE_THREADS = 2 if source.endswith("_threads2") else 0
        results.append(measure_pipeline(names[source], configs[source], args.batch_size,
                                        args.seconds))
      row = results[-1]
      print(f"  measured {row['source']}: {row['clips_per_s']:.1f} clips/s", flush=True)
  report = {"command": "python " + " ".join([sys.argv[0]] + (argv or sys.argv[1:])),
            "cpu_cores": cpu_cores(), "load_average_1min": os.getloadavg()[0],
            "clip": f"{args.num_frames}x{args.image_size}x{args.image_size}x3 float32",
            "batch_size": args.batch_size, "results": results, "setup": timings}
  header = ("| source | cores | clips/s | clips/s per core | clips per CPU-second | "
            "time to first batch (s) |\n|---|---:|---:|---:|---:|---:|")
  lines = [header] + [f"| {r['source']} | {r['cores']} | {r['clips_per_s']:.1f} | "
                      f"{r['clips_per_s_per_core']:.1f} | {r['clips_per_cpu_s']:.1f} | "
                      f"{r['time_to_first_batch_s']:.1f} |" for r in results]
  print("\n".join(lines))
  print(f"cores: {report['cpu_cores']}, load average: {report['load_average_1min']:.1f}, "
        f"setup: {', '.join(f'{k}={v:.1f}' for k, v in timings.items())}")
  if args.output:
    with open(args.output, "w") as f:
      json.dump(report, f, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(main())
