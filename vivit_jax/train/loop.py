"""The main job's loop: restore or initialise, train, evaluate, checkpoint.

`run(config, workdir)` dispatches on `objectives.run_mode(config)`:
  train (modes train / finetune / pretrain / distill)  `train_and_evaluate`: resumes
      from the newest readable checkpoint in `WORKDIR/checkpoints` (else
      starts from `config.init_from` or random init), trains to
      `train.num_steps`, evaluating every `eval.every_steps` and at the end;
      a classifier run that reaches `train.num_steps` then writes
      `WORKDIR/model/`, a model checkpoint (`config.json` with "model",
      "labels", "input", "source", and `params/`) that `vivit-predict` /
      `vivit-stream` / `vivit-export` / `vivit-evaluate` read.
  eval  `evaluate_only`: the workdir's newest checkpoint (else `init_from`),
      one pass over the eval split.
Both evaluate with `evaluator.Evaluator`.

Exact resumption: the train state (with its constant PRNG key; step `s` uses
`fold_in(key, s)`) and the data iterator's position are saved together, so a
resumed run computes bit for bit what an uninterrupted run computes.

Before anything is written, `startup.check` refuses user mistakes (bad
values, eval data, batches that do not split over the devices, ...) naming
the key. A step that both checkpoints and evaluates saves first, so a failing
eval loses no work (with `checkpoint.keep_best` the save waits for the eval's
metrics, and happens without them if the eval fails). With
`train.nan_policy="skip"`, more than `train.max_skipped_steps` skipped steps
stop the run (FloatingPointError).

The loop holds the whole config; it resolves it once (`specs.resolve`) and
hands the steps, the teacher, the checkpointer and the input their specs.

Train metrics stay on device between log steps; they are fetched (and each
step checked for non-finite loss, naming the step) before every console
line, evaluation, checkpoint and stop, so no checkpoint follows an
unchecked step. Only process 0 writes logs; every process checkpoints.
"""

import json
import math
import os
import signal
from typing import Any, Dict, List, Optional, Tuple

import jax
import numpy as np

from vivit_jax import checkpoints as model_checkpoints
from vivit_jax.checkpoints import init_from, resume_config
from vivit_jax.checkpoints import train as train_checkpoints
from vivit_jax.checkpoints import workdir as workdir_names
from vivit_jax.checkpoints import workdir_lock
from vivit_jax.common import console
from vivit_jax.models import build_model
from vivit_jax.train import distill, objectives, partitioning, specs, startup
from vivit_jax.train import metric_writer as train_logging
from vivit_jax.train.distributed import make_global_batch
from vivit_jax.train.evaluation import plots
from vivit_jax.train.evaluation.evaluator import Evaluator
from vivit_jax.train.inputs import class_names, data_counters, input_spec, video_shape
from vivit_jax.train.mesh import create_mesh
from vivit_jax.train.steps import check_finite, init_train_state, make_train_step
from vivit_jax.common.errors import UserError

TRAIN_KEYS = ("video", "label")
MODEL_DIR = workdir_names.MODEL_DIR  # WORKDIR/model: the finished classifier


def initial_state(config, model, mesh, ckpt: train_checkpoints.TrainCheckpointer,
                  resolved: Optional[specs.Specs] = None):
  """`(state, shardings, start_step, data_state)`: restored, else initialised.

  `resolved`: `specs.resolve(config)`, when the caller has it already.
  """
  resolved = specs.resolve(config) if resolved is None else resolved
  clip = video_shape(resolved.data)
  state, shardings = init_train_state(resolved.step, model, mesh, resolved.seed, clip)
  restored = ckpt.restore_latest(state)
  if restored is not None:
    step, state, data_state = restored
    console.console(f"restored checkpoint at step {step} from {ckpt.directory}")
    return state, shardings, step, data_state
  if config.init_from.kind:
    try:
      state = init_from.initialise_state(config, state, clip)
    except (model_checkpoints.ParamMismatchError, FileNotFoundError) as error:
      raise UserError(f"{config.init_from.kind} checkpoint does not fit: {error}",
                      f"--config.init_from.path={config.init_from.path}",
                      "start from a checkpoint of this model (or make --config.model.* "
                      "match it), or set --config.init_from.kind= for random init"
                      ) from error
    console.console(f"initialised parameters from {config.init_from.kind} "
                          f"checkpoint {config.init_from.path}")
  return state, shardings, 0, None


class MetricBuffer:
  """Train metrics of the steps since the last flush, still on device."""

  def __init__(self, nan_policy: str, max_skipped_steps: Optional[int] = None):
    self.nan_policy = nan_policy
    self.max_skipped_steps = max_skipped_steps
    self._pending: List[Tuple[int, Dict[str, Any]]] = []
    self.skipped_steps = 0

  def add(self, step: int, metrics) -> None:
    self._pending.append((step, metrics))

  def flush(self) -> Dict[str, float]:
    """Fetches, checks each step (raises naming it), returns the means."""
    fetched = jax.device_get(self._pending)
    self._pending = []
    sums: Dict[str, float] = {}
    finite = 0
    for step, metrics in fetched:
      check_finite(metrics, step, self.nan_policy)
      if not bool(metrics["is_finite"]):
        self.skipped_steps += 1
        console.warn(f"step {step}: non-finite loss; update skipped "
                           "(train.nan_policy='skip')")
        if self.max_skipped_steps is not None and self.skipped_steps > self.max_skipped_steps:
          raise FloatingPointError(
              f"{self.skipped_steps} steps skipped with a non-finite loss by step {step}, "
              f"more than train.max_skipped_steps={self.max_skipped_steps} "
              "(--config.train.max_skipped_steps): lower optimizer.learning_rate or set "
              "optimizer.clip_grad_norm, then re-run to resume from the last checkpoint")
        continue
      finite += 1
      for name, value in metrics.items():
        sums[name] = sums.get(name, 0.0) + float(value)
    return {k: v / finite for k, v in sums.items() if k != "is_finite"} if finite else {}


def _write_eval(writer: train_logging.MetricWriter, workdir: str, step: int, metrics,
                images) -> None:
  writer.write_scalars(step, metrics)
  for name, picture in images:
    writer.write_image(step, f"eval/{name}", picture)
    plots.write_png(workdir, name, step, picture)
  shown = ", ".join(f"{k.split('/', 1)[1]} {train_logging.metric_text(v)}"
                    for k, v in sorted(metrics.items())
                    if not k.endswith(("num_videos", "num_clips")))
  console.console(f"eval at step {step}: {shown}")


def save_model(config, workdir: str, mesh, state, step: int) -> str:
  """Writes `WORKDIR/model/` (a model checkpoint predict / stream / export read).

  The params are gathered to every host (replicated), then written once:
  Orbax writes host numpy arrays from the primary process and `config.json`
  is written by process 0; every process must call this (it synchronises).
  """
  gather = jax.jit(lambda p: p, out_shardings=partitioning.replicated(mesh))
  params = jax.tree_util.tree_map(lambda x: np.asarray(x.addressable_data(0)),
                                  gather(distill.student_params(state.params)))
  # Several heads: data.class_names name the combined labels, not the heads'
  # classes the served scores are, so serving numbers those.
  data = specs.DataSpec.from_config(config)
  labels = None if config.model.get("class_splits", None) else class_names(data)
  payload = {"model": config.model.to_dict(), "labels": labels,
             "input": input_spec(data),
             "source": {"workdir": os.path.abspath(workdir), "step": int(step),
                        "mode": config.mode}}
  directory = model_checkpoints.save_model_checkpoint(
      os.path.join(workdir, MODEL_DIR), params, payload, force=True)
  console.console(f"wrote model checkpoint (step {step}) to {directory}")
  return directory


def _write_json(path: str, payload: Dict[str, Any]) -> None:
  """Writes `payload`; a non-finite number is written as null, with a warning."""
  bad = sorted(k for k, v in payload.items() if isinstance(v, float) and not math.isfinite(v))
  if bad:
    console.warn(f"{', '.join(f'{k}={payload[k]}' for k in bad)}: not finite; written "
                       f"as null to {path}")
    payload = {k: (None if k in bad else v) for k, v in payload.items()}
  if console.is_writer():
    with open(path, "w") as f:
      json.dump(payload, f, indent=2, sort_keys=True, allow_nan=False)


def train_and_evaluate(config, workdir: str) -> Dict[str, float]:
  """Trains to `train.num_steps` (resuming if possible); returns the last eval."""
  resolved = specs.resolve(config)
  mesh = create_mesh(resolved.mesh)
  model = build_model(resolved.model)
  ckpt = train_checkpoints.TrainCheckpointer(workdir, resolved.checkpoint)
  if ckpt.all_steps():  # Resuming: say what changed, refuse what changes the run.
    resume_config.check(workdir, config, console=console.console)
  state, shardings, start_step, data_state = initial_state(config, model, mesh, ckpt, resolved)
  # Only now: a run that fails to restore must not overwrite its workdir's config.
  train_logging.write_config_json(workdir, config, train_logging.CONFIG_JSON)
  num_steps = int(config.train.num_steps)
  teacher = distill.load_teacher(resolved.step, mesh) if distill.active(config) else None
  train_step = make_train_step(resolved.step, model, mesh, shardings, teacher=teacher)
  evaluator = Evaluator(config, model, mesh)
  train_input = distill.train_input_config(config) if teacher is not None else config
  train_iter = startup.open_input(train_input, train=True, state=data_state)
  writer = train_logging.MetricWriter(workdir, purge_step=start_step + 1 if start_step else None)
  progress = train_logging.Progress(num_steps, config.train.batch_size, start_step)
  buffer = MetricBuffer(config.train.nan_policy, config.train.max_skipped_steps)
  stop = train_checkpoints.StopRequest()
  if config.checkpoint.save_on_sigterm:
    stop.install()
  console.console(
      f"{config.mode}: {type(model).__name__}, {jax.device_count()} devices on "
      f"{jax.process_count()} process(es), mesh {dict(mesh.shape)}, steps "
      f"{start_step}->{num_steps}, global batch {config.train.batch_size}")
  eval_metrics: Dict[str, float] = {}
  step = start_step
  try:
    for step in range(start_step + 1, num_steps + 1):
      local = next(train_iter)
      batch = make_global_batch({k: local[k] for k in TRAIN_KEYS if k in local}, mesh)
      state, metrics = train_step(state, batch)
      buffer.add(step, metrics)
      ckpt.check_for_errors()  # A failed background save stops the run at once.

      last = step == num_steps
      stopping = config.checkpoint.save_on_sigterm and (
          stop.requested or ckpt.reached_preemption(step))
      do_log = step % config.log.every_steps == 0 or last
      do_eval = last or bool(config.eval.every_steps and step % config.eval.every_steps == 0)
      do_save = last or stopping or ckpt.should_save(step)
      if not (do_log or do_eval or do_save):
        continue
      train_metrics = buffer.flush()
      if do_log and train_metrics:
        data_counts = data_counters(train_iter)
        throughput = progress.report(step, train_metrics, data_counts)
        writer.write_scalars(step, data_counts)
        writer.write_scalars(step, {f"train/{k}": v for k, v in train_metrics.items()})
        writer.write_scalars(step, throughput)
      # The step's checkpoint goes first (the eval may fail); keep_best wants
      # the eval's metrics with it, so then it follows the eval, or its failure.
      save_first = do_save and not (do_eval and config.checkpoint.keep_best)
      if save_first:
        ckpt.save(step, state, train_iter.get_state(), force=last or stopping)
      if do_eval:
        try:
          if config.debug.fail_eval_at_step == step:
            raise RuntimeError(f"debug.fail_eval_at_step={step}: failing this eval")
          result = evaluator.run(state)
        except BaseException:
          if do_save and not save_first:
            ckpt.save(step, state, train_iter.get_state(), force=True)
            ckpt.wait_until_finished()
          raise
        eval_metrics = result.metrics
        _write_eval(writer, workdir, step, eval_metrics, result.images)
      if do_save and not save_first:
        ckpt.save(step, state, train_iter.get_state(), metrics=eval_metrics,
                  force=last or stopping)
      if config.debug.sigkill_after_step == step:
        ckpt.wait_until_finished()
        console.warn(f"debug.sigkill_after_step={step}: killing this process")
        os.kill(os.getpid(), signal.SIGKILL)
      if stopping:
        console.console(f"stop requested: saved step {step}; re-run the same "
                              "command to resume")
        break
    if start_step >= num_steps:
      console.console(f"already trained to step {start_step}; evaluating only")
      result = evaluator.run(state)
      eval_metrics = result.metrics
      _write_eval(writer, workdir, start_step, eval_metrics, result.images)
    if evaluator.objective == "classification" and step >= num_steps:
      save_model(config, workdir, mesh, state, step)
  finally:
    stop.uninstall()
    ckpt.close()
    writer.close()
    close = getattr(train_iter, "close", None)
    if close is not None:
      close()
  result = dict(eval_metrics, step=step, skipped_steps=buffer.skipped_steps)
  stats = getattr(train_iter, "stats", None)
  if stats is not None:
    result.update({f"data/{k}": v for k, v in dict(stats()).items()
                   if isinstance(v, (int, float))})
  _write_json(os.path.join(workdir, "metrics.json"), result)
  return result


def evaluate_only(config, workdir: str) -> Dict[str, float]:
  """mode="eval": one eval pass; writes `WORKDIR/eval_step<S>[_shuffled].json`."""
  evaluator = Evaluator(config)
  restored = evaluator.restore(workdir, allow_init_from=True)
  step = restored.step
  result = evaluator.run(restored.state)
  writer = train_logging.MetricWriter(os.path.join(workdir, "eval"))
  _write_eval(writer, os.path.join(workdir, "eval"), step, result.metrics, result.images)
  writer.close()
  suffix = "_shuffled" if config.eval.shuffle_frames else ""
  _write_json(os.path.join(workdir, f"eval_step{step}{suffix}.json"),
              dict(result.metrics, step=step))
  return dict(result.metrics, step=step)


def run(config, workdir: str) -> Dict[str, float]:
  """Checks config and data (`startup.check`: a `UserError` naming the key),
  writes `config.json`, runs the mode; returns metrics.

  A resumed training run first compares its config with the workdir's
  `config.json` (`checkpoints/resume_config.py`) and writes its own only once
  the checkpoint is restored.

  Training holds `WORKDIR/run.lock` (`checkpoints/workdir_lock.py`) for the
  whole run: a second run on the same workdir is refused with
  `WorkdirLockedError` naming the holder's host and pid. A relative local
  workdir is taken from the current directory.
  """
  workdir = workdir_names.absolute(workdir)
  startup.check(config, workdir)
  evaluating = objectives.run_mode(config) == "eval"
  os.makedirs(workdir, exist_ok=True)
  if evaluating:  # Reads checkpoints, writes only its own files: no lock needed.
    train_logging.write_config_json(workdir, config, "config_eval.json")
    return evaluate_only(config, workdir)
  # Before config.json: a refused second run must not overwrite the first's.
  with workdir_lock.hold(workdir, jax.process_index()):
    return train_and_evaluate(config, workdir)  # Writes config.json once restored.
