r"""Accuracy cost of compression: every `vivit-compress` variant against float32.

    python scripts/compression_accuracy.py [--demo_checkpoint=demo_workdir/finetune/model] \
        [--tokens_checkpoint=DIR] [--models=demo,tokens] \
        [--merge_fractions=0.25,0.5,0.65,0.8,0.9] [--merge_per_block=0.1,0.2,0.25,0.3] \
        [--tokens_steps=600] \
        [--workdir=demo_workdir/compression_accuracy] [--output=WORKDIR/compression_accuracy.json]

For each classifier, each variant is written by `vivit-compress`
(`vivit_jax.compress.compress_checkpoint`: `int8_weight`, `int8_dynamic`,
token merging at each strength, token merging + `int8_dynamic`) and
evaluated on the held-out clips by the evaluator `vivit-evaluate` runs
(`evaluation.Evaluator`: restore the checkpoint, one pass, per-video
softmax scores). Reported per variant: tokens leaving the last block, top-1,
its difference to the float32 model in points, agreement (% of clips whose
argmax equals the float32 model's), parameter bytes and, in the JSON, how
far the scores moved (`mean_max_prob_diff`: the largest absolute change of
a class probability against float32, averaged over the clips); a row meets the
target when it loses at most 1 point of top-1 and agrees on at least 97% of
the clips. No timing here (`scripts/benchmark_cpu_inference.py` races them).

The classifiers, on `make demo`'s generated clips (`demo_workdir/data`,
written if absent; `--data_dir` reads another dataset of the same layout):
  demo    the demo's classifier, 64 tokens + CLS (8 frames of 32 x 32):
          `--demo_checkpoint` (e.g. `demo_workdir/finetune/model` after
          `make demo`), else trained here as `make demo` does: next-frame
          pretraining (`configs/demo_pretrain.py:forecast`, 1200 steps),
          then `configs/demo_finetune.py` (300 steps).
  tokens  `configs/demo_tokens.py:256`: the same clips at 64 x 64, 256
          tokens + CLS: `--tokens_checkpoint`, else trained here from
          scratch for `--tokens_steps`.
Token merging strengths are given two ways:
  `--merge_fractions`   the fraction of the patch tokens gone by the last
                        block: r = round(fraction * tokens / blocks) merged
                        in every block (ToMe's constant r; the per-block cap
                        of half the tokens may leave fewer gone); rows
                        "tome r=R".
  `--merge_per_block`   the fraction of the tokens entering each block that
                        it merges (`vivit-compress --token-merging=P%`,
                        `token_merging.proportional_schedule`: front-loaded,
                        the schedule the CPU race found fast); rows
                        "tome P%/block".
Each nonzero strength is measured alone and with int8_dynamic.

Prints one table per classifier and the literature figure beside it; writes
JSON to `--output`: per classifier its labels and, per variant, the
predictions (argmax per eval video, in the evaluator's video order) that
top-1 and agreement are computed from. `--set KEY=VALUE` (repeatable)
overrides a config key of every training and evaluation (tests use it to
make everything tiny).
"""

import argparse
import datetime
import json
import os
import re
import shutil
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "configs"))  # demo_common, as the demo configs import it
sys.path.insert(0, os.path.join(REPO, "scripts"))  # demo.py: how `make demo` trains

import numpy as np  # noqa: E402
from absl import logging as absl_logging  # noqa: E402

import demo  # noqa: E402  pylint: disable=wrong-import-order
import demo_common  # noqa: E402  pylint: disable=wrong-import-order
from vivit_jax import checkpoints  # noqa: E402
from vivit_jax.common.params import param_bytes  # noqa: E402
from vivit_jax.compress import __main__ as compress_cli  # noqa: E402
from vivit_jax.data.demo import synthetic  # noqa: E402
from vivit_jax.models import build_model  # noqa: E402
from vivit_jax.models import token_merging as tome  # noqa: E402
from vivit_jax.models import vivit  # noqa: E402
from vivit_jax.train import experiment, loop  # noqa: E402
from vivit_jax.train.evaluation.evaluator import Evaluator  # noqa: E402

TARGET_TOP1_DROP_POINTS, TARGET_AGREEMENT_PCT = 1.0, 97.0
LITERATURE = ("ToMe on MAE-ST ViT-L/16, Kinetics-400 (Bolya et al., ICLR 2023): 2.2x "
              "throughput for -0.2 to -0.3 top-1, no retraining")
MODELS = {"demo": "demo_finetune.py", "tokens": "demo_tokens.py:256"}


def parse_overrides(pairs: Sequence[str]) -> Dict[str, Any]:
  """`["a.b=3", "c.d=x"]` -> `{"a.b": 3, "c.d": "x"}` (values read as JSON when they parse)."""
  out = {}
  for pair in pairs:
    key, sep, value = pair.partition("=")
    if not sep:
      raise SystemExit(f"error: --set {pair!r} is not KEY=VALUE (--set): e.g. --set "
                       "train.batch_size=8")
    try:
      out[key] = json.loads(value)
    except json.JSONDecodeError:
      out[key] = value
    if isinstance(out[key], list):
      out[key] = tuple(out[key])
  return out


def data_overrides(train_files: str, eval_files: str) -> Dict[str, Any]:
  return {"data.train_files": train_files, "data.eval_files": eval_files}


def train_demo_classifier(workdir: str, overrides: Dict[str, Any], pretrain_steps: int,
                          finetune_steps: Optional[int]) -> str:
  """`make demo`'s classifier: next-frame pretraining, then fine-tuning from it;
  returns the fine-tuned model checkpoint dir."""
  pretrain_dir, finetune_dir = (os.path.join(workdir, "demo_pretrain"),
                                os.path.join(workdir, "demo_finetune"))
  for path in (pretrain_dir, finetune_dir):
    shutil.rmtree(path, ignore_errors=True)
  every = {"train.num_steps": pretrain_steps, "eval.every_steps": pretrain_steps,
           "checkpoint.every_steps": pretrain_steps}
  print(f"=== demo classifier: pretraining ({demo.PRETRAIN_CONFIG}, {pretrain_steps} steps)",
        flush=True)
  loop.run(demo.load_config(demo.PRETRAIN_CONFIG, **overrides, **every), pretrain_dir)
  finetune = dict(overrides, **{"init_from.path": pretrain_dir})
  if finetune_steps:
    finetune.update({"train.num_steps": finetune_steps, "eval.every_steps": finetune_steps,
                     "checkpoint.every_steps": finetune_steps})
  print("=== demo classifier: fine-tuning (demo_finetune.py)", flush=True)
  loop.run(demo.load_config(MODELS["demo"], **finetune), finetune_dir)
  return os.path.join(finetune_dir, loop.MODEL_DIR)


def train_tokens_classifier(workdir: str, overrides: Dict[str, Any], steps: int) -> str:
  """`configs/demo_tokens.py:256` from scratch; returns its model checkpoint dir."""
  run_dir = os.path.join(workdir, "tokens_train")
  shutil.rmtree(run_dir, ignore_errors=True)
  every = {"train.num_steps": steps, "eval.every_steps": steps, "checkpoint.every_steps": steps,
           "log.every_steps": max(steps // 10, 1)}
  print(f"=== tokens classifier: {MODELS['tokens']} from scratch, {steps} steps", flush=True)
  loop.run(demo.load_config(MODELS["tokens"], **dict(overrides, **every)), run_dir)
  return os.path.join(run_dir, loop.MODEL_DIR)


def token_counts(model_config: Dict[str, Any], video_shape, merging: Sequence[int]
                 ) -> Tuple[int, int, Tuple[int, ...]]:
  """`(patch tokens, tokens into the first block, tokens leaving each block)`
  of one merged sequence: the whole clip (`spatio_temporal`) or one frame
  (`factorised_encoder`'s spatial encoder); a CLS token counts as a token."""
  model = build_model(model_config)
  tokens_in, protect = vivit.merged_sequence(model, video_shape)
  patches = tokens_in - int(model.classifier == "token")
  plan = tome.schedule(merging, model.num_layers) or (0,) * model.num_layers
  return patches, tokens_in, tome.token_counts(tokens_in, plan, protect)


def variants(model_config: Dict[str, Any], video_shape, fractions: Sequence[float],
             per_block: Sequence[float] = ()) -> List[Dict[str, Any]]:
  """`[{name, method, token_merging}]`: float32, the two int8 methods, token
  merging at each fraction of the tokens gone (`(r,)`) and at each fraction
  per block (a float, which `vivit-compress` resolves into the per-block
  schedule), each also with int8_dynamic (merging off, r = 0 or 0%, is kept
  alone: it must equal float32)."""
  patches = token_counts(model_config, video_shape, ())[0]
  layers = int(model_config["num_layers"])
  out = [{"name": "float32", "method": None, "token_merging": None},
         {"name": "int8_weight", "method": "int8_weight", "token_merging": None},
         {"name": "int8_dynamic", "method": "int8_dynamic", "token_merging": None}]
  merges = []
  for fraction in fractions:
    r = int(round(fraction * patches / layers))
    if r not in merges:
      merges.append(r)
  out += [{"name": f"tome r={r}", "method": None, "token_merging": (r,)} for r in merges]
  out += [{"name": f"tome r={r} + int8_dynamic", "method": "int8_dynamic",
           "token_merging": (r,)} for r in merges if r]
  per_block = list(dict.fromkeys(float(f) for f in per_block))
  out += [{"name": f"tome {tome.flag_value(f)}/block", "method": None, "token_merging": f}
          for f in per_block]
  out += [{"name": f"tome {tome.flag_value(f)}/block + int8_dynamic", "method": "int8_dynamic",
           "token_merging": f} for f in per_block if f]
  return out


def variant_dir_name(model: str, variant: str) -> str:
  """A directory name for a written variant: `demo`, `tome 25%/block` -> `demo_tome25pct_block`."""
  name = variant.replace(" ", "").replace("%", "pct").replace("=", "").replace("+", "_")
  return f"{model}_" + re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def predict(config, checkpoint: str) -> Tuple[np.ndarray, np.ndarray]:
  """`(scores (V, C), labels (V,))` of `checkpoint` on `config`'s eval split:
  each video's view-averaged softmax, which `vivit-evaluate` ranks (a fresh
  `Evaluator`: it honours the checkpoint's int8 and token merging)."""
  evaluator = Evaluator(config)
  restored = evaluator.restore(checkpoint)
  result = evaluator.run(restored.state).classifier
  return np.asarray(result.scores), np.asarray(result.labels)


def measure(name: str, config, model_dir: str, fractions: Sequence[float],
            out_dir: str, per_block: Sequence[float] = ()) -> Dict[str, Any]:
  """Every variant of `model_dir` evaluated on `config`'s eval split (module docstring)."""
  stored = checkpoints.load_model_config(model_dir)
  model_config = dict(stored["model"])
  video_shape = checkpoints.video_shape_of(stored)
  _, float_params = checkpoints.load_model_checkpoint(model_dir)
  rows, reference, labels = [], None, None
  for variant in variants(model_config, video_shape, fractions, per_block):
    checkpoint, size = model_dir, param_bytes(float_params)
    variant = dict(variant, merge_per_block=None)
    if isinstance(variant["token_merging"], float):
      variant["merge_per_block"] = variant["token_merging"]
    if variant["method"] or variant["token_merging"] is not None:
      checkpoint = os.path.join(out_dir, variant_dir_name(name, variant["name"]))
      report = compress_cli.compress_checkpoint(
          model_dir, checkpoint, variant["method"], check_clips=0, force=True,
          progress=False, token_merging=variant["token_merging"])
      size = report["param_bytes_after"]
      variant["token_merging"] = report["token_merging"]  # the stored per-block schedule
    scores, video_labels = predict(config, checkpoint)
    predictions = np.argmax(scores, -1)
    if reference is None:
      reference, reference_scores, labels = predictions, scores, video_labels
    elif not np.array_equal(video_labels, labels):
      raise RuntimeError(f"{checkpoint}: the eval videos came in another order than float32's")
    _, tokens_in, counts = token_counts(model_config, video_shape,
                                       variant["token_merging"] or ())
    top1 = 100.0 * float(np.mean(predictions == labels))
    agreement = 100.0 * float(np.mean(predictions == reference))
    moved = float(np.mean(np.max(np.abs(scores - reference_scores), -1)))
    row = dict(variant, checkpoint=checkpoint, tokens_per_block=list(counts),
               tokens_last_block=int(counts[-1]), tokens_in=int(tokens_in), top1=top1,
               param_bytes=int(size), agreement_pct=agreement,
               mean_max_prob_diff=moved,
               predictions=[int(p) for p in predictions])
    row["delta_top1_points"] = top1 - rows[0]["top1"] if rows else 0.0
    row["meets_target"] = bool(row["delta_top1_points"] >= -TARGET_TOP1_DROP_POINTS
                               and agreement >= TARGET_AGREEMENT_PCT)
    rows.append(row)
    print(f"{name}: {variant['name']}: top-1 {top1:.1f}%, agreement {agreement:.1f}%",
          flush=True)
  return {"checkpoint": model_dir, "num_videos": int(len(labels)),
          "labels": [int(y) for y in labels], "model": model_config,
          "video_shape": list(video_shape), "variants": rows}


def table(name: str, result: Dict[str, Any]) -> str:
  """One classifier's rows as a Markdown table, the literature figure below."""
  lines = [f"{name}: {result['checkpoint']} ({result['num_videos']} eval clips, "
           f"{result['variants'][0]['tokens_in']} tokens in, CLS included)",
           "| variant | tokens at the last block | top-1 | Δ top-1 (points) | agreement | "
           "mean max \\|Δp\\| | parameter bytes | target (≤ 1 pt, ≥ 97%) |",
           "|---|---|---|---|---|---|---|---|"]
  for row in result["variants"]:
    lines.append(f"| {row['name']} | {row['tokens_last_block']} | {row['top1']:.1f}% | "
                 f"{row['delta_top1_points']:+.1f} | {row['agreement_pct']:.1f}% | "
                 f"{row['mean_max_prob_diff']:.4f} | "
                 f"{row['param_bytes']:,} | {'yes' if row['meets_target'] else 'no'} |")
  lines.append(f"literature: {LITERATURE}")
  return "\n".join(lines)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--models", default="demo,tokens",
                      help="classifiers to measure: demo, tokens or both (comma-separated)")
  parser.add_argument("--demo_checkpoint", help="the demo classifier's model checkpoint "
                      "(default: train it as make demo does)")
  parser.add_argument("--tokens_checkpoint", help="the 256-token classifier's model "
                      "checkpoint (default: train it)")
  parser.add_argument("--tokens_steps", type=int, default=600,
                      help="train steps of the 256-token classifier")
  parser.add_argument("--pretrain_steps", type=int, default=demo.PRETRAIN_STEPS,
                      help="the demo classifier's pretraining steps (make demo's)")
  parser.add_argument("--finetune_steps", type=int, default=0,
                      help="the demo classifier's fine-tuning steps (0: demo_finetune.py's)")
  parser.add_argument("--merge_fractions", default="0.25,0.5,0.65,0.8,0.9",
                      help="token merging strengths: fraction of the tokens gone by the end "
                           "(empty: none)")
  parser.add_argument("--merge_per_block", default="0.1,0.2,0.25,0.3",
                      help="token merging strengths: fraction of the tokens entering each "
                           "block that it merges (0 to 0.5; empty: none)")
  parser.add_argument("--data_dir", help="a generated dataset (train-*-of-*.tfrecord, "
                      "eval-*-of-*.tfrecord); default: make demo's, written if absent")
  parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="config override for every training and evaluation")
  parser.add_argument("--workdir", default=os.path.join(REPO, "demo_workdir",
                                                        "compression_accuracy"))
  parser.add_argument("--output", help="JSON path (default WORKDIR/compression_accuracy.json)")
  args = parser.parse_args(argv)
  models = [m.strip() for m in args.models.split(",") if m.strip()]
  unknown = sorted(set(models) - set(MODELS))
  if unknown or not models:
    print(f"error: unknown classifier(s) {unknown} (--models): use demo, tokens or both",
          file=sys.stderr)
    return 2
  fractions = [float(f) for f in args.merge_fractions.split(",") if f.strip()]
  per_block = [float(f) for f in args.merge_per_block.split(",") if f.strip()]
  bad = [f for f in per_block if not 0.0 <= f <= tome.MAX_FRACTION]
  if bad:
    print(f"error: {bad} outside 0 to {tome.MAX_FRACTION} (--merge_per_block): a block merges "
          "at most half of its tokens", file=sys.stderr)
    return 2
  absl_logging.set_verbosity(absl_logging.WARNING)
  args.workdir = os.path.abspath(args.workdir)
  os.makedirs(args.workdir, exist_ok=True)
  if args.data_dir:
    data = {"train_files": os.path.join(args.data_dir, "train-*-of-*.tfrecord"),
            "eval_files": os.path.join(args.data_dir, "eval-*-of-*.tfrecord")}
  else:
    data = synthetic.write_demo_dataset(
        demo_common.DEMO_DATA_DIR, num_train=demo_common.NUM_TRAIN,
        num_eval=demo_common.NUM_EVAL, num_frames=demo_common.SOURCE_FRAMES,
        size=demo_common.SOURCE_SIZE, num_classes=demo_common.NUM_CLASSES,
        num_train_shards=8)
  overrides = dict(data_overrides(data["train_files"], data["eval_files"]),
                   **parse_overrides(args.set))
  variants_dir = os.path.join(args.workdir, "variants")
  results = {}
  for name in models:
    if name == "demo":
      model_dir = args.demo_checkpoint or train_demo_classifier(
          args.workdir, overrides, args.pretrain_steps, args.finetune_steps)
    else:
      model_dir = args.tokens_checkpoint or train_tokens_classifier(
          args.workdir, overrides, args.tokens_steps)
    config = demo.load_config(MODELS[name], **overrides, **{"eval.num_batches": 0})
    results[name] = measure(name, config, model_dir, fractions, variants_dir, per_block)
    results[name]["config"] = f"configs/{MODELS[name]}"
  for name, result in results.items():
    print("\n" + table(name, result), flush=True)
  payload = {"command": "python scripts/compression_accuracy.py " + " ".join(
      sys.argv[1:] if argv is None else argv),
             "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
             "target": {"max_top1_drop_points": TARGET_TOP1_DROP_POINTS,
                        "min_agreement_pct": TARGET_AGREEMENT_PCT},
             "literature": LITERATURE, "merge_fractions": fractions,
             "merge_per_block": per_block,
             "tokens_steps": args.tokens_steps, "models": results}
  output = args.output or os.path.join(args.workdir, "compression_accuracy.json")
  os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
  with open(output, "w") as f:
    json.dump(payload, f, indent=1)
  print(f"JSON: {output}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
