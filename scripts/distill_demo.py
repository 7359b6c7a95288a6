"""Distillation on the demo task: teacher, student from scratch, student distilled.

    python scripts/distill_demo.py [--steps=300] [--teacher_steps=600] [--num_train=2048]

Generates `make demo`'s moving-shapes data (`synthetic.write_demo_dataset`
with the demo's clip settings, into `WORKDIR/data`), then runs the main job
three times in this process, each exactly what `python -m vivit_jax.main`
runs:

  1. teacher: `configs/demo_tfrecord.py` (the demo ViViT: width 96, 4 layers,
     8 frames at stride 2), from scratch for `--teacher_steps`;
  2. student, from scratch: `configs/demo_distill.py --config.mode=train`
     (width 48, 2 layers, 4 frames at stride 4);
  3. student, distilled: `configs/demo_distill.py` with
     `distill.teacher=WORKDIR/teacher/model` (same steps, data and seed as 2).

Prints a table (top-1 on the held-out clips, parameters, forward MACs per
clip; the students' top-1 also as the difference to the teacher's) and
writes it as JSON to `WORKDIR/distill_demo.json`. Workdirs start afresh.
"""

import argparse
import json
import os
import shutil
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "configs"))  # demo_common, as the demo configs import it

import jax  # noqa: E402
from absl import logging as absl_logging  # noqa: E402

from vivit_jax import checkpoints  # noqa: E402
from vivit_jax.data.demo import synthetic  # noqa: E402
from vivit_jax.models import registry  # noqa: E402
from vivit_jax.train import experiment, loop  # noqa: E402

import demo_common  # noqa: E402  pylint: disable=wrong-import-order


def _config(name: str, data: dict, steps: int, **overrides):
  overrides = dict({"data.train_files": data["train_files"],
                    "data.eval_files": data["eval_files"], "train.num_steps": steps,
                    "checkpoint.every_steps": steps, "eval.every_steps": 0,
                    "log.every_steps": max(steps // 4, 1)}, **overrides)
  return experiment.load_config_file(os.path.join(REPO, "configs", f"{name}.py"), overrides)


def _describe(workdir: str, metrics: dict) -> dict:
  model, params, meta = checkpoints.load_model(os.path.join(workdir, loop.MODEL_DIR))
  shape = checkpoints.video_shape_of(meta)
  macs = registry.interface_of(model).forward_macs(model, shape)
  return {"top1": float(metrics["eval/top1"]), "eval_loss": float(metrics["eval/loss"]),
          "params": int(sum(x.size for x in jax.tree_util.tree_leaves(params))),
          "frames": int(shape[0]), "forward_macs": int(macs)}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=300, help="train steps of every run")
  parser.add_argument("--teacher_steps", type=int, default=600, help="train steps of the teacher")
  parser.add_argument("--num_train", type=int, default=2048, help="generated train clips")
  parser.add_argument("--workdir", default=os.path.join(REPO, "demo_workdir", "distill_demo"))
  args = parser.parse_args(argv)
  absl_logging.set_verbosity(absl_logging.WARNING)
  data = synthetic.write_demo_dataset(
      os.path.join(args.workdir, "data"), num_train=args.num_train,
      num_eval=demo_common.NUM_EVAL, num_frames=demo_common.SOURCE_FRAMES,
      size=demo_common.SOURCE_SIZE, num_classes=demo_common.NUM_CLASSES, num_train_shards=8)
  runs = {"teacher": ("demo_tfrecord", {}),
          "student_scratch": ("demo_distill", {"mode": "train"}),
          "student_distilled": ("demo_distill", {})}
  results, start = {}, time.perf_counter()
  for name, (config_name, overrides) in runs.items():
    workdir = os.path.join(args.workdir, name)
    shutil.rmtree(workdir, ignore_errors=True)
    if name == "student_distilled":
      overrides = {"distill.teacher": os.path.join(args.workdir, "teacher", loop.MODEL_DIR)}
    print(f"=== {name}: python -m vivit_jax.main --config=configs/{config_name}.py "
          + " ".join(f"--config.{k}={v}" for k, v in overrides.items()), flush=True)
    steps = args.teacher_steps if name == "teacher" else args.steps
    metrics = loop.run(_config(config_name, data, steps, **overrides), workdir)
    results[name] = _describe(workdir, metrics)
  teacher = results["teacher"]
  print(f"\ndemo task ({args.num_train} train / {demo_common.NUM_EVAL} eval clips; teacher "
        f"{args.teacher_steps} steps, students {args.steps} steps each; "
        f"{time.perf_counter() - start:.0f}s)")
  print("| model | frames | params | MACs/clip | top-1 | vs teacher |")
  print("|---|---|---|---|---|---|")
  for name, r in results.items():
    gap = "" if name == "teacher" else f"{100 * (r['top1'] - teacher['top1']):+.1f} pts"
    print(f"| {name} | {r['frames']} | {r['params']:,} | {r['forward_macs'] / 1e6:.1f}M | "
          f"{100 * r['top1']:.1f}% | {gap} |")
  payload = {"steps": args.steps, "teacher_steps": args.teacher_steps, "num_train": args.num_train,
             "num_eval": demo_common.NUM_EVAL, "results": results,
             "distilled_minus_scratch_top1": results["student_distilled"]["top1"]
             - results["student_scratch"]["top1"],
             "student_macs_ratio": results["student_distilled"]["forward_macs"]
             / teacher["forward_macs"]}
  path = os.path.join(args.workdir, "distill_demo.json")
  with open(path, "w") as f:
    json.dump(payload, f, indent=2, sort_keys=True)
  print(f"distilled - scratch: {100 * payload['distilled_minus_scratch_top1']:+.1f} pts top-1; "
        f"student MACs {payload['student_macs_ratio']:.2f}x the teacher's; JSON: {path}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
