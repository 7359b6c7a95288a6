"""The main job's loop: restore or initialise, train, evaluate, checkpoint.

`run(config, workdir)` dispatches on `config.mode`:
  pretrain / train / finetune  `train_and_evaluate`: resumes from the newest
      readable checkpoint in `WORKDIR/checkpoints` (else starts from
      `config.init_from` or random init), trains to `train.num_steps`,
      evaluating every `eval.every_steps` and at the end; a classifier run
      that reaches `train.num_steps` then writes `WORKDIR/model/`, a model
      checkpoint (`config.json` with "model", "labels", "input", "source",
      and `params/`) that `vivit_jax.predict` / `stream` / `export` /
      `evaluate` read.
  eval  `evaluate_only`: the workdir's newest checkpoint (else `init_from`),
      one pass over the eval split.

Exact resumption: the train state (with its constant PRNG key; step `s` uses
`fold_in(key, s)`) and the data iterator's position are saved together, so a
resumed run computes bit for bit what an uninterrupted run computes.

Train metrics stay on device between log steps; they are fetched (and each
step checked for non-finite loss, naming the step) before every console
line, evaluation, checkpoint and stop, so no checkpoint follows an
unchecked step. Only process 0 writes logs; every process checkpoints.
"""

import json
import os
import signal
from typing import Any, Dict, List, Optional, Tuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from vivit_jax import checkpoints as model_checkpoints
from vivit_jax.models import build_model, embedding
from vivit_jax.train import (checkpointing, confusion, evaluation, experiment, init_from,
                             partitioning)
from vivit_jax.train import metric_writer as train_logging
from vivit_jax.train import plots
from vivit_jax.train.distributed import make_global_batch
from vivit_jax.train.mesh import create_mesh
from vivit_jax.train.steps import (check_finite, init_train_state, make_eval_step,
                                   make_train_step)

TRAIN_KEYS = ("video", "label")
MODEL_DIR = "model"  # WORKDIR/model: the finished classifier as a model checkpoint


def step_config(config) -> ml_collections.ConfigDict:
  """The config the train core sees: mode "eval" -> the model's training mode."""
  if config.mode != "eval":
    return config
  config = ml_collections.ConfigDict(config.to_dict())
  config.mode = "pretrain" if config.model.get("name", "vivit") == "videomae" else "finetune"
  return config


def video_shape(config) -> Tuple[int, int, int, int]:
  """`(T, H, W, C)` of one clip, from the data config."""
  size = int(config.data.image_size)
  return (int(config.data.num_frames), size, size, 3)


def local_batch_size(global_batch: int, what: str) -> int:
  """This process's share of a global batch; must divide evenly."""
  count = jax.process_count()
  if global_batch % count:
    raise ValueError(f"{what}={global_batch} is not divisible by the {count} processes")
  return global_batch // count


def create_iterator(config, train: bool, state=None):
  """The data pipeline (imported lazily: it needs TensorFlow)."""
  from vivit_jax import data  # pylint: disable=g-import-not-at-top
  batch = config.train.batch_size if train else config.eval.batch_size
  kwargs = {} if state is None else {"state": state}
  return data.create_iterator(
      config.data, train=train,
      batch_size=local_batch_size(batch, "train.batch_size" if train else "eval.batch_size"),
      seed=int(config.seed), process_index=jax.process_index(),
      process_count=jax.process_count(), **kwargs)


def _copy_tree(tree):
  return jax.tree_util.tree_map(jnp.copy, tree)


def initial_state(config, model, mesh, ckpt: checkpointing.TrainCheckpointer):
  """`(state, shardings, start_step, data_state)`: restored, else initialised."""
  state, shardings = init_train_state(step_config(config), model, mesh, int(config.seed),
                                      video_shape(config))
  restored = ckpt.restore_latest(state)
  if restored is not None:
    step, state, data_state = restored
    train_logging.console(f"restored checkpoint at step {step} from {ckpt.directory}")
    return state, shardings, step, data_state
  if config.init_from.kind:
    grid = embedding.token_grid(video_shape(config), config.model.patch_size,
                                config.model.get("tubelet_size", 1))
    params = init_from.initial_params(config.init_from, state.params, grid[1:])
    ema = _copy_tree(params) if state.ema_params is not None else None
    state = state.replace(params=params, ema_params=ema)
    train_logging.console(f"initialised parameters from {config.init_from.kind} "
                          f"checkpoint {config.init_from.path}")
  return state, shardings, 0, None


class MetricBuffer:
  """Train metrics of the steps since the last flush, still on device."""

  def __init__(self, nan_policy: str):
    self.nan_policy = nan_policy
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
        train_logging.warn(f"step {step}: non-finite loss; update skipped "
                           "(train.nan_policy='skip')")
        continue
      finite += 1
      for name, value in metrics.items():
        sums[name] = sums.get(name, 0.0) + float(value)
    return {k: v / finite for k, v in sums.items() if k != "is_finite"} if finite else {}


def class_names(config) -> Optional[List[str]]:
  """The data config's class names (`data.class_names`), if it has them."""
  names = config.data.class_names
  return [str(n) for n in names] if names else None


def evaluate(config, model, mesh, state, eval_step, image_step, shuffle_frames=None):
  """One eval pass over the eval split; returns `(metrics, (name, image) or None)`.

  The image is `(H, W, 3)` uint8: pretraining's original / masked /
  reconstructed grid ("reconstruction"), or the classifier's row-normalised
  confusion matrix ("confusion").
  """
  shuffle = bool(config.eval.shuffle_frames if shuffle_frames is None else shuffle_frames)
  batches = create_iterator(config, train=False)
  try:
    if step_config(config).mode == "pretrain":
      metrics, images = evaluation.evaluate_pretrain(
          eval_step, image_step, state, model, batches, mesh, config.train.pixel_mean,
          config.train.pixel_std, int(config.eval.num_images), int(config.eval.num_batches))
      return metrics, None if images is None else ("reconstruction", _reconstruction(images))
    result = evaluation.classifier_pass(
        eval_step, state, batches, mesh, shuffle_frames=shuffle, seed=int(config.seed),
        max_batches=int(config.eval.num_batches))
    picture = confusion.confusion_image(result.confusion(), class_names(config))
    return result.metrics(), ("confusion", picture)
  finally:
    close = getattr(batches, "close", None)
    if close is not None:
      close()


def _reconstruction(images) -> np.ndarray:
  """Stacks `(original, masked, reconstructed)` grids of every clip vertically."""
  grid = plots.reconstruction_grid(*(clip[0] for clip in images))
  for i in range(1, len(images[0])):
    grid = np.concatenate([grid, np.full((4,) + grid.shape[1:], 255, np.uint8),
                           plots.reconstruction_grid(*(c[i] for c in images))])
  return grid


def _write_eval(writer: train_logging.MetricWriter, workdir: str, step: int, metrics,
                image) -> None:
  writer.write_scalars(step, metrics)
  if image is not None:
    name, picture = image
    writer.write_image(step, f"eval/{name}", picture)
    plots.write_png(workdir, name, step, picture)
  shown = ", ".join(f"{k.split('/', 1)[1]} {v:.4f}" for k, v in sorted(metrics.items())
                    if not k.endswith(("num_videos", "num_clips")))
  train_logging.console(f"eval at step {step}: {shown}")


def input_spec(config) -> Dict[str, Any]:
  """The inference `"input"` block matching the data config's eval path."""
  data = config.data
  return {"num_frames": int(data.num_frames), "frame_stride": int(data.stride),
          "image_size": [int(data.image_size), int(data.image_size)],
          "resize_short_side": int(data.eval_resize_short_side or data.resize_short_side),
          "mean": [float(v) for v in data.mean], "std": [float(v) for v in data.std]}


def save_model(config, workdir: str, mesh, state, step: int) -> str:
  """Writes `WORKDIR/model/` (a model checkpoint predict / stream / export read).

  The params are gathered to every host (replicated), then written once:
  Orbax writes host numpy arrays from the primary process and `config.json`
  is written by process 0; every process must call this (it synchronises).
  """
  gather = jax.jit(lambda p: p, out_shardings=partitioning.replicated(mesh))
  params = jax.tree_util.tree_map(lambda x: np.asarray(x.addressable_data(0)),
                                  gather(state.params))
  payload = {"model": config.model.to_dict(), "labels": class_names(config),
             "input": input_spec(config),
             "source": {"workdir": os.path.abspath(workdir), "step": int(step),
                        "mode": config.mode}}
  directory = model_checkpoints.save_model_checkpoint(
      os.path.join(workdir, MODEL_DIR), params, payload, force=True)
  train_logging.console(f"wrote model checkpoint (step {step}) to {directory}")
  return directory


def _write_json(path: str, payload: Dict[str, Any]) -> None:
  if train_logging.is_writer():
    with open(path, "w") as f:
      json.dump(payload, f, indent=2, sort_keys=True)


def train_and_evaluate(config, workdir: str) -> Dict[str, float]:
  """Trains to `train.num_steps` (resuming if possible); returns the last eval."""
  mesh = create_mesh(config.mesh)
  model = build_model(config.model)
  ckpt = checkpointing.TrainCheckpointer(workdir, config.checkpoint)
  state, shardings, start_step, data_state = initial_state(config, model, mesh, ckpt)
  num_steps = int(config.train.num_steps)
  train_step = make_train_step(config, model, mesh, shardings)
  eval_step = make_eval_step(config, model, mesh, shardings)
  image_step = (make_eval_step(config, model, mesh, shardings, return_reconstruction=True)
                if config.mode == "pretrain" and config.eval.num_images else None)
  train_iter = create_iterator(config, train=True, state=data_state)
  writer = train_logging.MetricWriter(workdir, purge_step=start_step + 1 if start_step else None)
  progress = train_logging.Progress(num_steps, config.train.batch_size, start_step)
  buffer = MetricBuffer(config.train.nan_policy)
  stop = checkpointing.StopRequest()
  if config.checkpoint.save_on_sigterm:
    stop.install()
  train_logging.console(
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
        throughput = progress.report(step, train_metrics)
        writer.write_scalars(step, {f"train/{k}": v for k, v in train_metrics.items()})
        writer.write_scalars(step, throughput)
      if do_eval:
        eval_metrics, image = evaluate(config, model, mesh, state, eval_step, image_step)
        _write_eval(writer, workdir, step, eval_metrics, image)
      if do_save:
        ckpt.save(step, state, train_iter.get_state(),
                  metrics=eval_metrics if do_eval else None, force=last or stopping)
      if config.debug.sigkill_after_step == step:
        ckpt.wait_until_finished()
        train_logging.warn(f"debug.sigkill_after_step={step}: killing this process")
        os.kill(os.getpid(), signal.SIGKILL)
      if stopping:
        train_logging.console(f"stop requested: saved step {step}; re-run the same "
                              "command to resume")
        break
    if start_step >= num_steps:
      train_logging.console(f"already trained to step {start_step}; evaluating only")
      eval_metrics, image = evaluate(config, model, mesh, state, eval_step, image_step)
      _write_eval(writer, workdir, start_step, eval_metrics, image)
    if config.mode != "pretrain" and step >= num_steps:
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
  mesh = create_mesh(config.mesh)
  model = build_model(config.model)
  ckpt = checkpointing.TrainCheckpointer(workdir, config.checkpoint)
  try:
    state, shardings, step, _ = initial_state(config, model, mesh, ckpt)
  finally:
    ckpt.close()
  if step == 0 and not config.init_from.kind:
    raise FileNotFoundError(f"nothing to evaluate: {workdir} has no checkpoint and "
                            "init_from.kind is empty")
  eval_config = step_config(config)
  eval_step = make_eval_step(eval_config, model, mesh, shardings)
  image_step = (make_eval_step(eval_config, model, mesh, shardings, return_reconstruction=True)
                if eval_config.mode == "pretrain" and config.eval.num_images else None)
  metrics, image = evaluate(eval_config, model, mesh, state, eval_step, image_step)
  writer = train_logging.MetricWriter(os.path.join(workdir, "eval"))
  _write_eval(writer, os.path.join(workdir, "eval"), step, metrics, image)
  writer.close()
  suffix = "_shuffled" if config.eval.shuffle_frames else ""
  _write_json(os.path.join(workdir, f"eval_step{step}{suffix}.json"), dict(metrics, step=step))
  return dict(metrics, step=step)


def run(config, workdir: str) -> Dict[str, float]:
  """Validates the config, writes `config.json`, runs the mode; returns metrics."""
  experiment.validate(config)
  os.makedirs(workdir, exist_ok=True)
  train_logging.write_config_json(
      workdir, config, "config_eval.json" if config.mode == "eval" else train_logging.CONFIG_JSON)
  if config.mode == "eval":
    return evaluate_only(config, workdir)
  return train_and_evaluate(config, workdir)
