r"""Evaluate a trained classifier on a config's eval split: report, confusion matrix.

    python -m vivit_jax.evaluate --config=configs/demo_finetune.py \
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
`evaluation.classifier_pass` the training loop's periodic eval runs, sharded
over every device and host (run the same command on every host).

Writes to `--output` (default `CHECKPOINT/eval`; a workdir's `checkpoints/`
folder -> `WORKDIR/eval`), from process 0:
  report.json           top1, top5, mean_class_accuracy, clip_top1, loss,
                        num_videos, num_views, views_per_video, per_class
                        [{index, name, num_videos, accuracy}], confusion_matrix
                        (counts, row = true class), checkpoint, step, config.
  confusion_matrix.png  row-normalised, class names on the axes.
and prints a summary table. Exit status 0, or 1 with a one-line error for an
unusable checkpoint (missing, parameter mismatch) or config.
"""

import json
import os
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

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


def resolve_checkpoint(path: str) -> Tuple[str, str]:
  """`("model", dir)` for a model checkpoint, `("workdir", workdir)` for training ones.

  Raises FileNotFoundError saying what was looked for.
  """
  from vivit_jax import checkpoints  # pylint: disable=g-import-not-at-top
  from vivit_jax.train import checkpointing  # pylint: disable=g-import-not-at-top
  path = os.path.abspath(path)
  if os.path.isfile(os.path.join(path, checkpoints.CONFIG_FILE)) and os.path.isdir(
      os.path.join(path, checkpoints.PARAMS_DIR)):
    return "model", path
  if os.path.isdir(os.path.join(path, checkpointing.CHECKPOINTS_DIR)):
    return "workdir", path
  if os.path.basename(path) == checkpointing.CHECKPOINTS_DIR and os.path.isdir(path):
    return "workdir", os.path.dirname(path)
  raise FileNotFoundError(
      f"--checkpoint={path} is neither a model checkpoint ({checkpoints.CONFIG_FILE} + "
      f"{checkpoints.PARAMS_DIR}/) nor a training workdir (with "
      f"{checkpointing.CHECKPOINTS_DIR}/)")


def default_output(kind: str, path: str) -> str:
  """`CHECKPOINT/eval` (a model dir or a workdir)."""
  del kind
  return os.path.join(path, "eval")


def load_state(config, model, mesh, kind: str, path: str):
  """`(state, shardings, step, labels)` with the checkpoint's params in `state`.

  Args:
    config: the experiment config (its `step_config`: a classifier mode).
    kind, path: from `resolve_checkpoint`.

  Returns:
    `state`: a `TrainState` placed on `mesh` (`shardings`); `step`: the
    training step (None when the model checkpoint does not say);
    `labels`: the model checkpoint's class names, or None.
  """
  from vivit_jax import checkpoints  # pylint: disable=g-import-not-at-top
  from vivit_jax.train import checkpointing, loop, steps  # pylint: disable=g-import-not-at-top
  shape = loop.video_shape(config)
  if kind == "model":
    state, shardings = steps.init_train_state(config, model, mesh, int(config.seed), shape)
    stored, params = checkpoints.load_model_checkpoint(path, expected_params=state.params)
    state = state.replace(params=params)
    if state.ema_params is not None:
      state = state.replace(ema_params=params)
    step = (stored.get("source") or {}).get("step")
    return state, shardings, None if step is None else int(step), stored.get("labels")
  abstract, shardings = steps.abstract_train_state(config, model, mesh, shape, int(config.seed))
  ckpt = checkpointing.TrainCheckpointer(path, config.checkpoint)
  try:
    restored = ckpt.restore_latest(abstract)
  finally:
    ckpt.close()
  if restored is None:
    raise FileNotFoundError(f"{ckpt.directory} holds no training checkpoint")
  step, state, _ = restored
  return state, shardings, int(step), None


def per_class_rows(matrix, names: Sequence[str]) -> List[Dict[str, Any]]:
  """`[{index, name, num_videos, accuracy (None if no video)}]` per class."""
  from vivit_jax.train import evaluation  # pylint: disable=g-import-not-at-top
  accuracy = evaluation.per_class_accuracy(matrix)
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
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  from vivit_jax import checkpoints  # pylint: disable=g-import-not-at-top
  from vivit_jax.models import build_model  # pylint: disable=g-import-not-at-top
  from vivit_jax.train import confusion, evaluation, experiment, loop  # pylint: disable=g-import-not-at-top
  from vivit_jax.train import logging as train_logging  # pylint: disable=g-import-not-at-top
  from vivit_jax.train.mesh import create_mesh  # pylint: disable=g-import-not-at-top
  from vivit_jax.train.steps import make_eval_step  # pylint: disable=g-import-not-at-top

  experiment.validate(config)
  config = loop.step_config(config)
  if config.mode not in ("train", "finetune"):
    raise ValueError(f"evaluate needs a classifier config (mode train / finetune / eval "
                     f"with model.name='vivit'), got mode={config.mode!r}")
  kind, path = resolve_checkpoint(checkpoint)
  output = os.path.abspath(output or default_output(kind, path))
  mesh = create_mesh(config.mesh)
  model = build_model(config.model)
  if kind == "model" and checkpoints.load_model_config(path).get("quantization"):
    from vivit_jax.compress import quantize  # pylint: disable=g-import-not-at-top
    model, state, shardings, step, labels = quantize.eval_state(config, model, mesh, path)
  else:
    state, shardings, step, labels = load_state(config, model, mesh, kind, path)
  eval_step = make_eval_step(config, model, mesh, shardings, use_ema=use_ema and kind != "model")
  num_classes = int(config.data.num_classes)
  names = list(labels or loop.class_names(config) or [f"class_{i}" for i in range(num_classes)])
  if len(names) != num_classes:
    raise ValueError(f"{len(names)} class names for data.num_classes={num_classes}")

  batches = loop.create_iterator(config, train=False)
  total = batches.num_batches
  if config.eval.num_batches:
    total = min(total, int(config.eval.num_batches))
  views = int(config.data.eval_temporal_views) * int(config.data.eval_spatial_views)
  train_logging.console(
      f"evaluating {path} (step {step}) on {config.data.num_classes} classes: {total} "
      f"batches of {config.eval.batch_size} clips, {views} view(s) per video, "
      f"{jax.device_count()} device(s) on {jax.process_count()} process(es)")
  bar = tqdm(batches, total=total, desc="eval", unit="batch", dynamic_ncols=True,
             disable=not progress or not train_logging.is_writer())
  try:
    result = evaluation.classifier_pass(eval_step, state, bar, mesh, seed=int(config.seed),
                                        max_batches=int(config.eval.num_batches),
                                        shuffle_frames=bool(config.eval.shuffle_frames))
  finally:
    bar.close()
    batches.close()
  if result.num_classes != num_classes:
    raise ValueError(f"the model outputs {result.num_classes} classes, "
                     f"data.num_classes={num_classes}")
  metrics = result.metrics()
  matrix = result.confusion()
  report = {
      "config": config_name, "checkpoint": path, "checkpoint_kind": kind, "step": step,
      "params": "ema" if use_ema and kind != "model" else "params",
      "top1": metrics["eval/top1"], "top5": metrics["eval/top5"],
      "mean_class_accuracy": metrics["eval/mean_class_accuracy"],
      "clip_top1": metrics["eval/clip_top1"], "loss": metrics["eval/loss"],
      "num_videos": int(metrics["eval/num_videos"]), "num_views": int(result.num_clips),
      "views_per_video": views, "temporal_views": int(config.data.eval_temporal_views),
      "spatial_views": int(config.data.eval_spatial_views),
      "shuffle_frames": bool(config.eval.shuffle_frames),
      "per_class": per_class_rows(matrix, names),
      "confusion_matrix": matrix.tolist(),
  }
  if train_logging.is_writer():
    os.makedirs(output, exist_ok=True)
    with open(os.path.join(output, REPORT_FILE), "w") as f:
      json.dump(report, f, indent=1)
    confusion.save_confusion_png(os.path.join(output, CONFUSION_FILE), matrix, names,
                                 f"{os.path.basename(path)}: top-1 {report['top1']:.3f}")
    print(summary_table(report), flush=True)
    print(f"wrote {os.path.join(output, REPORT_FILE)} and {CONFUSION_FILE}", flush=True)
  return report


def summary_table(report: Dict[str, Any]) -> str:
  """The report as aligned text: the headline metrics, then per-class accuracy."""
  lines = [f"{'checkpoint':<22}{report['checkpoint']} (step {report['step']})"]
  for key, name in (("top1", "top-1"), ("top5", "top-5"),
                    ("mean_class_accuracy", "mean class accuracy"), ("clip_top1", "clip top-1"),
                    ("loss", "loss")):
    lines.append(f"{name:<22}{report[key]:.4f}")
  lines.append(f"{'videos / views':<22}{report['num_videos']} / {report['num_views']} "
               f"({report['temporal_views']} temporal x {report['spatial_views']} spatial)")
  rows = report["per_class"]
  if len(rows) > MAX_PRINTED_CLASSES:
    rows = sorted((r for r in rows if r["accuracy"] is not None),
                  key=lambda r: r["accuracy"])[:MAX_PRINTED_CLASSES // 3]
    lines.append(f"lowest per-class accuracy ({len(rows)} of {len(report['per_class'])}):")
  else:
    lines.append("per-class accuracy:")
  width = max([len(r["name"]) for r in rows] + [5])
  lines.append(f"  {'class':<{width}}  {'videos':>6}  {'top-1':>6}")
  for r in rows:
    accuracy = "-" if r["accuracy"] is None else f"{r['accuracy']:.4f}"
    lines.append(f"  {r['name']:<{width}}  {r['num_videos']:>6}  {accuracy:>6}")
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
  except (FileNotFoundError, ParamMismatchError, ValueError) as e:
    print(f"ERROR: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
    sys.exit(1)


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  app.run(main)
