r"""Evaluate a trained classifier on a config's eval split: report, confusion matrix.

    vivit-evaluate --config=configs/demo_finetune.py \
        --checkpoint=demo_workdir/finetune/model [--output=OUT_DIR] [--ema] \
        [--config.data.eval_temporal_views=2 --config.eval.batch_size=64 ...]

`--checkpoint` is either
  * a model checkpoint directory (`config.json` + `params/`, e.g. the
    `WORKDIR/model` a training run writes, or a converted model), or
  * a training workdir, or its `checkpoints/` folder: the newest readable
    step's `params` (`--ema`: its EMA params, needs `optimizer.ema_decay`).
The parameters must match the model of `--config` (names and shapes; a
mismatch lists every difference).

Every video of the eval split is read as T temporal x S spatial views
(`data.eval_temporal_views`, `data.eval_spatial_views`); each view's softmax
probabilities are averaged per video, then ranked: the same
`evaluator.Evaluator` the training loop's periodic eval runs (checkpoints
found by its `restore`), sharded over every device and host (run the same
command on every host). A tqdm bar shows progress and the ETA.

Writes to `--output` (default `CHECKPOINT/eval`; a workdir's `checkpoints/`
folder -> `WORKDIR/eval`), from process 0:
  report.json           top1, top5, mean_class_accuracy, clip_top1, loss,
                        num_videos, num_views, views_per_video, per_class
                        [{index, name, num_videos, accuracy}], confusion_matrix
                        (counts, row = true class), checkpoint, step, config,
                        and "input": {listed_videos, skipped_videos,
                        skipped_by_kind, skipped [{name, reason}], bad-file
                        counts}, the videos of the split that yielded no
                        view and were left out of every metric (process 0's
                        share on several hosts; docs/data.md).
  confusion_matrix.png  row-normalised, class names on the axes.
and prints a summary table. A model with `model.class_splits` (several heads,
e.g. Epic-Kitchens verb + noun) reports `top1` / `clip_top1` as action
accuracy (every head right) and, instead of the one-head per_class /
confusion_matrix / top5, a `heads` list [{name, num_classes, top1, top5,
mean_class_accuracy, clip_top1, per_class, confusion_matrix}], with one
`confusion_matrix_<head>.png` per head; class names are the checkpoint's
`labels` (sum of class_splits, the heads' names side by side) or `class_<i>`.
Exit status 0, or 1 with a one-line error for an
unusable checkpoint (missing, parameter mismatch) or config.
"""

import json
import os
from typing import Any, Dict, List, Optional, Sequence

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from vivit_jax.common import errors

REPORT_FILE = "report.json"
CONFUSION_FILE = "confusion_matrix.png"
MAX_PRINTED_CLASSES = 30

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file (a Python file with get_config()): the model "
    "and the eval data.", lock_config=True)
_CHECKPOINT = flags.DEFINE_string(
    "checkpoint", None, "Model checkpoint dir (config.json + params/), or a training "
    "workdir / its checkpoints/ folder.")
_OUTPUT = flags.DEFINE_string("output", None, "Output directory (default CHECKPOINT/eval).")
_EMA = flags.DEFINE_bool("ema", False, "Training checkpoints: evaluate the EMA params.")


def default_output(kind: str, path: str) -> str:
  """`CHECKPOINT/eval` (a model dir or a workdir)."""
  del kind
  return os.path.join(path, "eval")


def per_class_rows(matrix, names: Sequence[str]) -> List[Dict[str, Any]]:
  """`[{index, name, num_videos, accuracy (None if no video)}]` per class."""
  from vivit_jax.train.evaluation import passes  # pylint: disable=g-import-not-at-top
  accuracy = passes.per_class_accuracy(matrix)
  return [{"index": i, "name": names[i], "num_videos": int(matrix[i].sum()),
           "accuracy": None if matrix[i].sum() == 0 else float(accuracy[i])}
          for i in range(len(names))]


def run_evaluation(config, checkpoint: str, output: Optional[str] = None,
                   use_ema: bool = False, config_name: str = "",
                   progress: bool = True) -> Dict[str, Any]:
  """Evaluates `checkpoint` on `config`'s eval split; writes and returns the report.

  See the module docstring for the checkpoint kinds and the outputs.
  """
  import jax  # pylint: disable=g-import-not-at-top
  from vivit_jax.common import console  # pylint: disable=g-import-not-at-top
  from vivit_jax.train import experiment, inputs, multihead  # pylint: disable=g-import-not-at-top
  from vivit_jax.train.evaluation import confusion  # pylint: disable=g-import-not-at-top
  from vivit_jax.train.evaluation.evaluator import Evaluator  # pylint: disable=g-import-not-at-top

  experiment.validate(config)
  evaluator = Evaluator(config)
  if evaluator.objective != "classification":
    raise ValueError(f"evaluate needs a classification model (e.g. model.name='vivit'), "
                     f"got model.name={config.model.get('name', 'vivit')!r}")
  restored = evaluator.restore(checkpoint)
  kind, path, step = restored.kind, restored.path, restored.step
  output = os.path.abspath(output or default_output(kind, path))
  use_ema = use_ema and kind != "model"
  num_classes = int(config.data.num_classes)
  splits = evaluator.class_splits
  outputs = sum(splits) if splits else num_classes
  if splits:
    if restored.labels is not None and len(restored.labels) != outputs:
      raise ValueError(f"{len(restored.labels)} class names for the {outputs} scores of "
                       f"model.class_splits={splits} (their sum)")
    head_names = [names or [f"class_{i}" for i in range(c)] for names, c in zip(
        multihead.head_class_names(restored.labels, splits), splits)]
  else:
    names = list(restored.labels or inputs.class_names(config)
                 or [f"class_{i}" for i in range(num_classes)])
    if len(names) != num_classes:
      raise ValueError(f"{len(names)} class names for data.num_classes={num_classes}")
  views = int(config.data.eval_temporal_views) * int(config.data.eval_spatial_views)
  heads = f" ({' + '.join(map(str, splits))} in {len(splits)} heads)" if splits else ""
  console.console(
      f"evaluating {path} (step {step}) on {num_classes} classes{heads}: batches of "
      f"{config.eval.batch_size} clips, {views} view(s) per video, "
      f"{jax.device_count()} device(s) on {jax.process_count()} process(es)")
  outcome = evaluator.run(restored.state, use_ema=use_ema, progress=progress)
  result = outcome.classifier
  if result.num_classes != outputs:
    raise ValueError(f"the model outputs {result.num_classes} classes, " + (
        f"sum(model.class_splits={splits})={outputs}" if splits
        else f"data.num_classes={num_classes}"))
  metrics = result.metrics()
  report = {
      "config": config_name, "checkpoint": path, "checkpoint_kind": kind, "step": step,
      "params": "ema" if use_ema else "params",
      "top1": metrics["eval/top1"]}
  if not splits:
    matrix = result.confusion()
    report.update({"top5": metrics["eval/top5"],
                   "mean_class_accuracy": metrics["eval/mean_class_accuracy"]})
  report.update({
      "clip_top1": metrics["eval/clip_top1"], "loss": metrics["eval/loss"],
      "num_videos": int(metrics["eval/num_videos"]), "num_views": int(result.num_clips),
      "views_per_video": views, "temporal_views": int(config.data.eval_temporal_views),
      "spatial_views": int(config.data.eval_spatial_views),
      "shuffle_frames": bool(config.eval.shuffle_frames)})
  report["input"] = input_report(outcome.data_stats)
  if splits:
    report["class_splits"] = list(splits)
    report["heads"] = [head_report(metrics, name, result.confusion(h), head_names[h])
                       for h, name in enumerate(result.head_names)]
  else:
    report.update({"per_class": per_class_rows(matrix, names),
                   "confusion_matrix": matrix.tolist()})
  if console.is_writer():
    os.makedirs(output, exist_ok=True)
    with open(os.path.join(output, REPORT_FILE), "w") as f:
      json.dump(report, f, indent=1)
    title = os.path.basename(path)
    if splits:
      written = []
      for h, head in enumerate(report["heads"]):
        written.append(head_confusion_file(head["name"]))
        confusion.save_confusion_png(
            os.path.join(output, written[-1]), result.confusion(h), head_names[h],
            f"{title}: {head['name']} top-1 {head['top1']:.3f}")
    else:
      written = [CONFUSION_FILE]
      confusion.save_confusion_png(os.path.join(output, CONFUSION_FILE), matrix, names,
                                   f"{title}: top-1 {report['top1']:.3f}")
    print(summary_table(report), flush=True)
    print(f"wrote {os.path.join(output, REPORT_FILE)} and {', '.join(written)}", flush=True)
  return report


def input_report(stats: Dict[str, Any]) -> Dict[str, Any]:
  """The eval input's skip counts and skipped videos, for report.json."""
  return {"listed_videos": int(stats.get("num_videos", 0)),
          "skipped_videos": int(stats.get("skipped_corrupt", 0)),
          "skipped_by_kind": {name[len("skipped_"):]: int(value)
                              for name, value in sorted(stats.items())
                              if name.startswith("skipped_") and isinstance(value, int)
                              and name != "skipped_corrupt" and value},
          "skipped": [{"name": name, "reason": reason}
                      for name, reason in stats.get("skipped_reasons", {}).items()],
          **{name: int(value) for name, value in sorted(stats.items())
             if name.endswith("_files") and isinstance(value, int)}}


def skipped_line(report: Dict[str, Any]) -> str:
  """"3 of 13 listed videos were skipped (unreadable 3): a.mp4: reason; ...", or ""."""
  info = report.get("input") or {}
  if not info.get("skipped_videos"):
    return ""
  kinds = ", ".join(f"{kind} {count}" for kind, count in info["skipped_by_kind"].items())
  named = "; ".join(f"{entry['name']}: {entry['reason']}" for entry in info["skipped"][:5])
  more = len(info["skipped"]) - 5
  return (f"{info['skipped_videos']} of {info['listed_videos']} listed videos were skipped "
          f"({kinds}), not in the metrics: {named}" + (f"; {more} more in report.json"
                                                      if more > 0 else ""))


def head_confusion_file(head: str) -> str:
  """`confusion_matrix_<head>.png`."""
  return f"{os.path.splitext(CONFUSION_FILE)[0]}_{head}.png"


def head_report(metrics: Dict[str, float], name: str, matrix,
                names: Sequence[str]) -> Dict[str, Any]:
  """One head's entry of a multi-head report (module docstring)."""
  return {"name": name, "num_classes": len(names), "top1": metrics[f"eval/{name}_top1"],
          "top5": metrics[f"eval/{name}_top5"],
          "mean_class_accuracy": metrics[f"eval/{name}_mean_class_accuracy"],
          "clip_top1": metrics[f"eval/{name}_clip_top1"],
          "per_class": per_class_rows(matrix, names), "confusion_matrix": matrix.tolist()}


def _per_class_lines(rows: List[Dict[str, Any]], indent: str = "") -> List[str]:
  total = len(rows)
  if total > MAX_PRINTED_CLASSES:
    rows = sorted((r for r in rows if r["accuracy"] is not None),
                  key=lambda r: r["accuracy"])[:MAX_PRINTED_CLASSES // 3]
    lines = [f"{indent}lowest per-class accuracy ({len(rows)} of {total}):"]
  else:
    lines = [f"{indent}per-class accuracy:"]
  width = max([len(r["name"]) for r in rows] + [5])
  lines.append(f"{indent}  {'class':<{width}}  {'videos':>6}  {'top-1':>6}")
  for r in rows:
    accuracy = "-" if r["accuracy"] is None else f"{r['accuracy']:.4f}"
    lines.append(f"{indent}  {r['name']:<{width}}  {r['num_videos']:>6}  {accuracy:>6}")
  return lines


def summary_table(report: Dict[str, Any]) -> str:
  """The report as aligned text: the headline metrics, then per-class accuracy
  (per head, after the action accuracy, for a multi-head model)."""
  lines = [f"{'checkpoint':<22}{report['checkpoint']} (step {report['step']})"]
  multi = "heads" in report
  keys = ((("top1", "action top-1"), ("clip_top1", "action clip top-1")) if multi else
          (("top1", "top-1"), ("top5", "top-5"), ("mean_class_accuracy", "mean class accuracy"),
           ("clip_top1", "clip top-1")))
  for key, name in keys + (("loss", "loss"),):
    lines.append(f"{name:<22}{report[key]:.4f}")
  lines.append(f"{'videos / views':<22}{report['num_videos']} / {report['num_views']} "
               f"({report['temporal_views']} temporal x {report['spatial_views']} spatial)")
  if skipped_line(report):
    lines.append(f"{'skipped':<22}{skipped_line(report)}")
  if not multi:
    return "\n".join(lines + _per_class_lines(report["per_class"]))
  for head in report["heads"]:
    lines.append(f"{head['name']} ({head['num_classes']} classes): top-1 {head['top1']:.4f}, "
                 f"top-5 {head['top5']:.4f}, mean class accuracy "
                 f"{head['mean_class_accuracy']:.4f}, clip top-1 {head['clip_top1']:.4f}")
    lines += _per_class_lines(head["per_class"], "  ")
  return "\n".join(lines)


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if not _CHECKPOINT.value:
    raise app.UsageError("--checkpoint is required")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  config = _CONFIG.value
  from vivit_jax.train import distributed  # pylint: disable=g-import-not-at-top
  distributed.maybe_initialize_distributed(config)
  from vivit_jax.checkpoints import ParamMismatchError  # pylint: disable=g-import-not-at-top
  try:
    run_evaluation(config, _CHECKPOINT.value, _OUTPUT.value, _EMA.value,
                   config_flags.get_config_filename(flags.FLAGS["config"]))
  except ValueError as e:  # The config does not fit the checkpoint; other kinds: run_absl.
    if isinstance(e, (errors.UserError, ParamMismatchError)):
      raise
    raise errors.UserError(str(e), f"--checkpoint={_CHECKPOINT.value}",
                                "pass a --config (and --config.* overrides) matching "
                                "the checkpoint's model and data") from e


def run() -> None:
  """The `vivit-evaluate` command (`python -m vivit_jax.train.evaluation.evaluate`)."""
  flags.mark_flags_as_required(["config"])
  errors.run_absl(main)


if __name__ == "__main__":
  run()
