"""`make demo`: pretrain, fine-tune and evaluate a small video transformer on CPU.

1. Generates the moving-shapes dataset once (`demo_workdir/data`: 16-frame
   64 x 64 clips of a shape moving right / left / down / up over a textured,
   noisy background; the class is the direction, so no single frame tells
   it). Training reads 8 frames (every 2nd) at 32 x 32. A few held-out
   videos are also written as mp4 files (`demo_workdir/videos/`) for
   `vivit-predict` / `vivit-stream` (see docs/evaluate.md).
2. Masked pretraining of a small VideoMAE (`configs/demo_pretrain.py`).
3. Fine-tunes a ViViT from that encoder (`configs/demo_finetune.py`).
4. Evaluates the classifier on the held-out clips, and again with every
   clip's frames shuffled in time: a model that reads motion drops to chance.

Each stage is the main job run in this process, exactly what
`python -m vivit_jax.main --config=configs/<stage>.py --workdir=...` runs.
The two training workdirs are started afresh on every run.
"""

import os
import shutil
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "configs"))  # demo_common, as the demo configs import it

from absl import logging as absl_logging  # noqa: E402

from vivit_jax.data import synthetic  # noqa: E402
from vivit_jax.train import experiment, loop  # noqa: E402

import demo_common  # noqa: E402  pylint: disable=wrong-import-order

WORKDIR = os.path.join(REPO, "demo_workdir")
VIDEOS_DIR = os.path.join(WORKDIR, "videos")
VIDEO_SEED = 12345  # not the train (0) or eval (1) seed of the TFRecords


def write_demo_videos(out_dir: str = VIDEOS_DIR, num_videos: int = 3, fps: int = 8) -> list:
  """Writes `num_videos` demo clips as H.264 mp4s named `<i>_<direction>.mp4`."""
  import av  # pylint: disable=import-outside-toplevel
  os.makedirs(out_dir, exist_ok=True)
  videos, labels = synthetic.generate_videos(
      num_videos, demo_common.SOURCE_FRAMES, demo_common.SOURCE_SIZE,
      demo_common.NUM_CLASSES, seed=VIDEO_SEED)
  paths = []
  for index, (video, label) in enumerate(zip(videos, labels)):
    path = os.path.join(out_dir, f"{index}_{synthetic.class_names(demo_common.NUM_CLASSES)[label]}.mp4")
    with av.open(path, "w") as container:
      stream = container.add_stream("libx264", rate=fps)
      stream.width, stream.height, stream.pix_fmt = video.shape[2], video.shape[1], "yuv420p"
      stream.options = {"crf": "12"}
      for frame in video:
        for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
          container.mux(packet)
      for packet in stream.encode():
        container.mux(packet)
    paths.append(path)
  return paths


def load_config(name: str, **overrides):
  """`configs/<name>.py`'s `get_config()` with dotted-key overrides applied."""
  return experiment.load_config_file(os.path.join(REPO, "configs", f"{name}.py"), overrides)


def banner(text: str) -> None:
  print(f"\n=== {text} ===", flush=True)


def main() -> None:
  absl_logging.set_verbosity(absl_logging.WARNING)
  start = time.perf_counter()
  banner("1/4 demo dataset")
  dataset = synthetic.write_demo_dataset(
      demo_common.DEMO_DATA_DIR, num_train=demo_common.NUM_TRAIN,
      num_eval=demo_common.NUM_EVAL, num_frames=demo_common.SOURCE_FRAMES,
      size=demo_common.SOURCE_SIZE, num_classes=demo_common.NUM_CLASSES,
      num_train_shards=8)
  print(f"{dataset['num_train']} train / {dataset['num_eval']} eval clips of "
        f"{dataset['num_frames']} x {dataset['size']}x{dataset['size']} in "
        f"{demo_common.DEMO_DATA_DIR} ({time.perf_counter() - start:.0f}s so far)", flush=True)
  videos = write_demo_videos()
  print(f"{len(videos)} example mp4s for predict / stream in {VIDEOS_DIR}", flush=True)

  pretrain_dir = os.path.join(WORKDIR, "pretrain")
  finetune_dir = os.path.join(WORKDIR, "finetune")
  for path in (pretrain_dir, finetune_dir):
    shutil.rmtree(path, ignore_errors=True)

  banner("2/4 masked pretraining (python -m vivit_jax.main "
         "--config=configs/demo_pretrain.py --workdir=demo_workdir/pretrain)")
  pretrain = loop.run(load_config("demo_pretrain"), pretrain_dir)
  stage_end = time.perf_counter()
  print(f"pretraining done: reconstruction loss {pretrain['eval/loss']:.4f} "
        f"({stage_end - start:.0f}s so far)", flush=True)

  banner("3/4 fine-tuning from the pretrained encoder (configs/demo_finetune.py)")
  finetune = loop.run(load_config("demo_finetune", **{"init_from.path": pretrain_dir}),
                      finetune_dir)
  print(f"fine-tuning done ({time.perf_counter() - start:.0f}s so far)", flush=True)

  banner("4/4 control: the same classifier on clips with frames shuffled in time")
  shuffled = loop.run(load_config("demo_finetune", **{"mode": "eval",
                                                      "eval.shuffle_frames": True}),
                      finetune_dir)

  chance = 1.0 / demo_common.NUM_CLASSES
  total = time.perf_counter() - start
  banner("result")
  print(f"eval clips:                    {int(finetune['eval/num_videos'])}")
  print(f"top-1 (fine-tuned ViViT):      {100 * finetune['eval/top1']:5.1f}%")
  print(f"chance ({demo_common.NUM_CLASSES} directions):        {100 * chance:5.1f}%")
  print(f"top-1, frames shuffled:        {100 * shuffled['eval/top1']:5.1f}%")
  print(f"pretraining reconstruction:    {pretrain['eval/loss']:.4f} (normalised-pixel MSE)")
  print(f"total time:                    {total:.0f}s")
  print(f"TensorBoard event files under {WORKDIR} (to view: pip install tensorboard; "
        f"tensorboard --logdir {WORKDIR})")
  print(f"the classifier as a model checkpoint: {os.path.join(finetune_dir, loop.MODEL_DIR)} "
        "(see docs/evaluate.md)")
  if finetune["eval/top1"] < chance + 0.25:
    print("the classifier did not get far above chance", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  main()
