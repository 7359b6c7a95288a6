"""`make demo`: pretrain, fine-tune and evaluate a small video transformer on CPU.

1. Generates the moving-shapes dataset once (`demo_workdir/data`: 16-frame
   64 x 64 clips of two shapes wrapping around the frame right / left / down
   / up, each slow or fast, plus a bouncing disc, over drifting gratings; the
   class is the direction, so no single frame tells it), and the labels of
   its first 5% as one file. Training reads 8 frames (every 2nd) at 32 x 32.
   A few held-out videos are also written as mp4 files
   (`demo_workdir/videos/`) for `vivit-predict` / `vivit-stream`.
2. Self-supervised pretraining of a small VideoMAE on all clips, labels
   unused, by next-frame prediction: the last 2 of 8 frames hidden, raw
   pixels (`configs/demo_pretrain.py:forecast`, PRETRAIN_STEPS steps); the
   forecast's PSNR next to copying the last visible frame; a loss-curve PNG.
3. Fine-tunes a ViViT from that encoder on all labels (`configs/demo_finetune.py`).
4. Scarce labels: the same recipe on the 5% labelled clips, from the
   pretrained encoder and from random init: what pretraining buys.
5. Evaluates the classifiers again with every clip's frames shuffled in
   time: a model that reads motion drops to chance.

Each stage is the main job run in this process, exactly what
`python -m vivit_jax.main --config=configs/<stage>.py --workdir=...` runs.
The training workdirs are started afresh on every run.
"""

import os
import shutil
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "configs"))  # demo_common, as the demo configs import it

from absl import logging as absl_logging  # noqa: E402

from vivit_jax.data.demo import synthetic  # noqa: E402
from vivit_jax.train import experiment, loop  # noqa: E402
from vivit_jax.train.evaluation import curves  # noqa: E402

import demo_common  # noqa: E402  pylint: disable=wrong-import-order

WORKDIR = os.path.join(REPO, "demo_workdir")
VIDEOS_DIR = os.path.join(WORKDIR, "videos")
VIDEO_SEED = 12345  # not the train (0) or eval (1) seed of the TFRecords
PRETRAIN_CONFIG, PRETRAIN_STEPS = "demo_pretrain.py:forecast", 1200


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
  """`configs/<name>` (`x.py` or `x.py:VARIANT`; `x` alone means `x.py`) with
  dotted-key overrides applied."""
  if ".py" not in name:
    name += ".py"
  return experiment.load_config_file(os.path.join(REPO, "configs", name), overrides)


def tensorboard_hint(logdir: str, python: str = sys.executable) -> str:
  """The line that says how to open TensorBoard on `logdir`: the `tensorboard`
  installed beside `python` (`make demo`'s environment has it: setup.py's
  `view` extra, part of `test`), else the one pip line that installs it there.
  Paths under the working directory are shown relative to it."""
  def shown(path):
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative
  tensorboard = os.path.join(os.path.dirname(python), "tensorboard")
  view = f"{shown(tensorboard)} --logdir {shown(logdir)}"
  if not os.path.exists(tensorboard):
    view = f"{shown(python)} -m pip install 'tensorboard>=2.18,<3' && {view}"
  return f"TensorBoard event files under {shown(logdir)}; to view them: {view}"


def banner(text: str) -> None:
  print(f"\n=== {text} ===", flush=True)


def main() -> None:
  absl_logging.set_verbosity(absl_logging.WARNING)
  start = time.perf_counter()
  since = lambda: f"({time.perf_counter() - start:.0f}s so far)"
  banner("1/5 demo dataset")
  dataset = synthetic.write_demo_dataset(
      demo_common.DEMO_DATA_DIR, num_train=demo_common.NUM_TRAIN,
      num_eval=demo_common.NUM_EVAL, num_frames=demo_common.SOURCE_FRAMES,
      size=demo_common.SOURCE_SIZE, num_classes=demo_common.NUM_CLASSES,
      num_train_shards=8)
  labelled = demo_common.LABELLED_TRAIN
  synthetic.write_label_subset(dataset["train_files"], labelled, demo_common.LABELLED_FILES)
  print(f"{dataset['num_train']} train / {dataset['num_eval']} eval clips of "
        f"{dataset['num_frames']} x {dataset['size']}x{dataset['size']} in "
        f"{demo_common.DEMO_DATA_DIR}; the first {labelled} also as a scarce-label set "
        f"{since()}", flush=True)
  videos = write_demo_videos()
  print(f"{len(videos)} example mp4s for predict / stream in {VIDEOS_DIR}", flush=True)

  pretrain_dir = os.path.join(WORKDIR, "pretrain")
  finetune_dir = os.path.join(WORKDIR, "finetune")
  scarce_dirs = {init: os.path.join(WORKDIR, f"scarce_{init}")
                 for init in ("pretrained", "scratch")}
  for path in (pretrain_dir, finetune_dir, *scarce_dirs.values()):
    shutil.rmtree(path, ignore_errors=True)

  every = {"train.num_steps": PRETRAIN_STEPS, "eval.every_steps": PRETRAIN_STEPS // 2,
           "checkpoint.every_steps": PRETRAIN_STEPS // 2}
  banner("2/5 next-frame pretraining on all clips, no labels (python -m vivit_jax.main "
         f"--config=configs/{PRETRAIN_CONFIG} --workdir=demo_workdir/pretrain "
         + " ".join(f"--config.{k}={v}" for k, v in every.items()) + ")")
  pretrain = loop.run(load_config(PRETRAIN_CONFIG, **every), pretrain_dir)
  curve = os.path.join(pretrain_dir, "images", "loss_curve.png")
  os.makedirs(os.path.dirname(curve), exist_ok=True)
  curves.save_loss_curve(pretrain_dir, curve, "pretraining: raw-pixel MSE of the hidden frames")
  print(f"pretraining done: forecast PSNR {pretrain['eval/psnr']:.2f} dB (copy the last "
        f"frame: {pretrain['eval/copy_last_psnr']:.2f} dB), loss curve {curve} {since()}",
        flush=True)

  banner("3/5 fine-tuning from the pretrained encoder on all labels "
         "(configs/demo_finetune.py)")
  finetune = loop.run(load_config("demo_finetune", **{"init_from.path": pretrain_dir}),
                      finetune_dir)
  print(f"fine-tuning done {since()}", flush=True)

  banner(f"4/5 scarce labels: {labelled} labelled clips, {demo_common.SCARCE_STEPS} steps, "
         "from the pretrained encoder and from random init (same recipe)")
  scarce = {}
  for init, workdir in scarce_dirs.items():
    overrides = {"data.train_files": demo_common.LABELLED_FILES,
                 "train.num_steps": demo_common.SCARCE_STEPS,
                 "eval.every_steps": demo_common.SCARCE_STEPS,
                 "checkpoint.every_steps": demo_common.SCARCE_STEPS,
                 "init_from.path": pretrain_dir if init == "pretrained" else "",
                 "init_from.kind": "pretrain" if init == "pretrained" else ""}
    scarce[init] = loop.run(load_config("demo_finetune", **overrides), workdir)
    print(f"{init}: top-1 {100 * scarce[init]['eval/top1']:.1f}% {since()}", flush=True)

  banner("5/5 control: the classifiers on clips with frames shuffled in time")
  shuffle = {"mode": "eval", "eval.shuffle_frames": True}
  shuffled = loop.run(load_config("demo_finetune", **shuffle), finetune_dir)
  scarce_shuffled = loop.run(load_config("demo_finetune", **shuffle),
                             scarce_dirs["pretrained"])

  chance = 1.0 / demo_common.NUM_CLASSES
  total = time.perf_counter() - start
  pct = lambda metrics: f"{100 * metrics['eval/top1']:5.1f}%"
  banner("result")
  print(f"eval clips:                               {int(finetune['eval/num_videos'])}")
  print(f"chance ({demo_common.NUM_CLASSES} directions):                   {100 * chance:5.1f}%")
  print(f"pretraining held-out loss:                {pretrain['eval/loss']:.5f} "
        "(raw-pixel MSE of the 2 hidden frames)")
  print(f"pretraining plain-pixel MSE:              {pretrain['eval/pixel_mse']:.5f} "
        f"(copy-the-mean: {pretrain['eval/mean_baseline_pixel_mse']:.5f})")
  print(f"forecast PSNR / SSIM:                     {pretrain['eval/psnr']:.2f} dB / "
        f"{pretrain['eval/ssim']:.3f} (copy the last frame: "
        f"{pretrain['eval/copy_last_psnr']:.2f} dB / {pretrain['eval/copy_last_ssim']:.3f})")
  print(f"all {dataset['num_train']} labels, from pretrained:       {pct(finetune)}   "
        f"frames shuffled: {pct(shuffled)}")
  print(f"{labelled} labels, from pretrained:          {pct(scarce['pretrained'])}   "
        f"frames shuffled: {pct(scarce_shuffled)}")
  print(f"{labelled} labels, same recipe from scratch: {pct(scarce['scratch'])}")
  print(f"total time:                               {total:.0f}s")
  print(tensorboard_hint(WORKDIR))
  print(f"the classifier as a model checkpoint: {os.path.join(finetune_dir, loop.MODEL_DIR)} "
        "(see docs/evaluate.md)")
  if finetune["eval/top1"] < chance + 0.25:
    print("the classifier did not get far above chance", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  main()
