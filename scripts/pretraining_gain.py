r"""What masked pretraining buys: fine-tuning from random init vs the pretrained encoder.

    python scripts/pretraining_gain.py [--seeds=3] [--fractions=0.05,0.2,1.0]
        [--finetune_steps=300] [--pretrain_dir=demo_workdir/pretrain]
        [--out=demo_workdir/pretraining_gain.json]

On the demo dataset (`make demo`'s, written here if missing), the demo
ViViT (`configs/demo_finetune.py`: same model, optimiser, schedule and
steps for both) is fine-tuned on the labels of the first 5%, 20% and 100%
of the training clips, from random init and from the encoder of a masked
pretraining run (`configs/demo_pretrain.py` on all clips without labels;
`--pretrain_dir` reuses an existing run, else one is trained), with
`--seeds` seeds each (the seed sets the init, data order and augmentation).
Every run is evaluated on the 256 held-out clips, and the pretrained one
again with each clip's frames shuffled in time (the motion control).

Prints a table (mean +- std top-1 over seeds, the gain in points, chance,
the shuffled control) and writes every run's numbers to `--out` (JSON).
"""

import argparse
import json
import os
import shutil
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from absl import logging as absl_logging  # noqa: E402

from vivit_jax.data import synthetic  # noqa: E402
from vivit_jax.train import demo_settings, experiment, loop  # noqa: E402


def load_config(name: str, **overrides):
  return experiment.load_config_file(os.path.join(REPO, "configs", f"{name}.py"), overrides)


def demo_dataset() -> dict:
  return synthetic.write_demo_dataset(
      demo_settings.DEMO_DATA_DIR, num_train=demo_settings.NUM_TRAIN,
      num_eval=demo_settings.NUM_EVAL, num_frames=demo_settings.SOURCE_FRAMES,
      size=demo_settings.SOURCE_SIZE, num_classes=demo_settings.NUM_CLASSES,
      num_train_shards=8)


def mean_std(values) -> str:
  values = 100 * np.asarray(values, np.float64)
  return f"{values.mean():5.1f} +- {values.std():4.1f}"


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--seeds", type=int, default=3)
  parser.add_argument("--fractions", default="0.05,0.2,1.0")
  parser.add_argument("--finetune_steps", type=int, default=300)
  parser.add_argument("--pretrain_steps", type=int, default=0,
                      help="0: demo_pretrain.py's own number of steps")
  parser.add_argument("--pretrain_dir", default="",
                      help="an existing pretraining workdir to reuse")
  parser.add_argument("--workdir", default=os.path.join(REPO, "demo_workdir", "gain"))
  parser.add_argument("--out", default=os.path.join(REPO, "demo_workdir",
                                                    "pretraining_gain.json"))
  args = parser.parse_args()
  absl_logging.set_verbosity(absl_logging.WARNING)
  start = time.perf_counter()
  dataset = demo_dataset()
  fractions = [float(f) for f in args.fractions.split(",")]

  pretrain_dir = args.pretrain_dir
  pretrain_metrics = None
  if not pretrain_dir:
    pretrain_dir = os.path.join(args.workdir, "pretrain")
    shutil.rmtree(pretrain_dir, ignore_errors=True)
    overrides = {"train.num_steps": args.pretrain_steps} if args.pretrain_steps else {}
    pretrain_metrics = loop.run(load_config("demo_pretrain", **overrides), pretrain_dir)
  elif not os.path.isdir(os.path.join(pretrain_dir, "checkpoints")):
    sys.exit(f"error: --pretrain_dir={pretrain_dir} has no checkpoints/; run "
             "configs/demo_pretrain.py there first or leave the flag out")

  runs = []
  for fraction in fractions:
    count = max(1, int(round(fraction * dataset["num_train"])))
    files = dataset["train_files"] if count >= dataset["num_train"] else (
        synthetic.write_label_subset(dataset["train_files"], count, os.path.join(
            demo_settings.DEMO_DATA_DIR, f"labelled_{count}.tfrecord")))
    for seed in range(args.seeds):
      for init in ("random", "pretrained"):
        workdir = os.path.join(args.workdir, f"f{fraction}_s{seed}_{init}")
        shutil.rmtree(workdir, ignore_errors=True)
        overrides = {"seed": seed, "data.train_files": files,
                     "train.num_steps": args.finetune_steps,
                     "eval.every_steps": args.finetune_steps,
                     "checkpoint.every_steps": args.finetune_steps,
                     "init_from.kind": "pretrain" if init == "pretrained" else "",
                     "init_from.path": pretrain_dir if init == "pretrained" else ""}
        result = loop.run(load_config("demo_finetune", **overrides), workdir)
        run = {"fraction": fraction, "labelled_clips": count, "seed": seed, "init": init,
               "top1": float(result["eval/top1"])}
        if init == "pretrained":
          shuffled = loop.run(load_config("demo_finetune", **dict(
              overrides, mode="eval", **{"eval.shuffle_frames": True})), workdir)
          run["top1_shuffled"] = float(shuffled["eval/top1"])
        runs.append(run)
        print(f"[{time.perf_counter() - start:5.0f}s] {run}", flush=True)
        shutil.rmtree(os.path.join(workdir, "checkpoints"), ignore_errors=True)

  chance = 1.0 / dataset["num_classes"]
  rows = []
  print(f"\nfine-tuning top-1 on {dataset['num_eval']} held-out clips, "
        f"{args.seeds} seeds, {args.finetune_steps} steps each (chance {100 * chance:.1f}%)")
  print(f"{'labels':>13s} | {'random init':>14s} | {'pretrained':>14s} | {'gain':>6s} | "
        f"{'pretrained, shuffled':>20s}")
  for fraction in fractions:
    pick = lambda init: [r for r in runs if r["fraction"] == fraction and r["init"] == init]
    scratch, pretrained = pick("random"), pick("pretrained")
    gain = 100 * (np.mean([r["top1"] for r in pretrained]) - np.mean([r["top1"] for r in scratch]))
    row = {"fraction": fraction, "labelled_clips": scratch[0]["labelled_clips"],
           "random_top1": [r["top1"] for r in scratch],
           "pretrained_top1": [r["top1"] for r in pretrained],
           "pretrained_shuffled_top1": [r["top1_shuffled"] for r in pretrained],
           "gain_points": float(gain)}
    rows.append(row)
    print(f"{100 * fraction:4.0f}% ({row['labelled_clips']:4d}) | "
          f"{mean_std(row['random_top1']):>14s} | {mean_std(row['pretrained_top1']):>14s} | "
          f"{gain:+6.1f} | {mean_std(row['pretrained_shuffled_top1']):>20s}")
  payload = {"chance": chance, "seeds": args.seeds, "finetune_steps": args.finetune_steps,
             "pretrain_dir": pretrain_dir, "num_eval": dataset["num_eval"],
             "pretrain_eval": ({k: float(v) for k, v in pretrain_metrics.items()}
                               if pretrain_metrics else None),
             "rows": rows, "runs": runs, "seconds": time.perf_counter() - start}
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out, "w") as f:
    json.dump(payload, f, indent=1)
  print(f"wrote {args.out} ({payload['seconds']:.0f}s)")


if __name__ == "__main__":
  main()
