"""One evaluator: `Evaluator(config).run(state)`, and the one way to find the state.

    evaluator = Evaluator(config)                     # model and mesh from the config
    restored = evaluator.restore("WORKDIR or CKPT_DIR")
    result = evaluator.run(restored.state)            # result.metrics["eval/top1"], ...

The training loop's periodic eval, `mode=eval` and `vivit-evaluate` all use
it: the eval step is compiled once per evaluator (one step also returns a
pretraining model's reconstruction and its token mask for the PNG), and
`restore` is the single checkpoint resolution:

  * a model checkpoint dir (`config.json` + `params/`): `checkpoints.load_model`
    into a fresh train state;
  * a training workdir or its `checkpoints/` folder: the newest readable
    step (`TrainCheckpointer.restore_latest`); with `allow_init_from`, an
    empty workdir falls back to `config.init_from` (mode=eval).

Metric keys: `evaluation.py` (classification) and `eval/loss`,
`eval/num_clips` (pretraining).
"""

import dataclasses
import os
from typing import Any, Dict, List, Optional, Tuple

import jax
import numpy as np

from vivit_jax import checkpoints
from vivit_jax.checkpoints import init_from
from vivit_jax.checkpoints import train as train_checkpoints
from vivit_jax.models import build_model
from vivit_jax.train import (confusion, distill, evaluation, inputs, multihead, objectives,
                             steps)
from vivit_jax.train import metric_writer as train_logging
from vivit_jax.train import plots
from vivit_jax.train.mesh import create_mesh


@dataclasses.dataclass
class EvalResult:
  """What `Evaluator.run` returns.

  Attributes:
    metrics: the `eval/*` scalars.
    images: `[(name, (H, W, 3) uint8)]`: "confusion" (row-normalised
      confusion matrix; with `class_splits` one "confusion_head_<h>" per
      head) or "reconstruction" (original / masked / reconstructed rows);
      empty when there is none.
    classifier: the classification pass (per-video scores, confusion), or None.
    data_stats: the eval input's `stats()` after the pass (skip counts,
      "skipped_reasons", "num_videos" listed on this process; docs/data.md).
  """
  metrics: Dict[str, float]
  images: List[Tuple[str, np.ndarray]]
  classifier: Optional[evaluation.ClassifierPass] = None
  data_stats: Dict[str, Any] = dataclasses.field(default_factory=dict)

  @property
  def image(self) -> Optional[Tuple[str, np.ndarray]]:
    """The first of `images`, or None."""
    return self.images[0] if self.images else None


def confusion_pictures(result: evaluation.ClassifierPass, names=None
                       ) -> List[Tuple[str, np.ndarray]]:
  """`[("confusion", picture)]`, or one `("confusion_head_<h>", picture)` per
  head; `names`: the class names (one head: C of them; several: sum C_h)."""
  if not result.class_splits:
    return [("confusion", confusion.confusion_image(result.confusion(), names))]
  heads = multihead.head_class_names(names, result.class_splits)
  return [(f"confusion_{name}", confusion.confusion_image(
      result.confusion(h), heads[h], f"{name}: confusion (rows: true, columns: predicted)"))
          for h, name in enumerate(result.head_names)]


@dataclasses.dataclass
class Restored:
  """A train state to evaluate and where it came from.

  Attributes:
    state, shardings: the `TrainState` on the evaluator's mesh and its shardings.
    step: the training step (None when a model checkpoint does not say; 0 for
      `init_from` weights).
    kind: "model", "workdir" or "init_from".
    path: the model checkpoint dir or the workdir.
    labels: a model checkpoint's class names, or None.
  """
  state: Any
  shardings: Any
  step: Optional[int]
  kind: str
  path: str
  labels: Optional[List[str]] = None


def resolve_checkpoint(path: str, allow_empty_workdir: bool = False) -> Tuple[str, str]:
  """`("model", dir)` for a model checkpoint, `("workdir", workdir)` for training ones.

  Raises FileNotFoundError saying what was looked for (unless
  `allow_empty_workdir`, where any directory is a workdir).
  """
  path = os.path.abspath(path)
  if os.path.isfile(os.path.join(path, checkpoints.CONFIG_FILE)) and os.path.isdir(
      os.path.join(path, checkpoints.PARAMS_DIR)):
    return "model", path
  ckpt_dir = train_checkpoints.CHECKPOINTS_DIR
  if os.path.isdir(os.path.join(path, ckpt_dir)):
    return "workdir", path
  if os.path.basename(path) == ckpt_dir and os.path.isdir(path):
    return "workdir", os.path.dirname(path)
  if allow_empty_workdir:
    return "workdir", path
  raise FileNotFoundError(
      f"--checkpoint={path} is neither a model checkpoint ({checkpoints.CONFIG_FILE} + "
      f"{checkpoints.PARAMS_DIR}/) nor a training workdir (with {ckpt_dir}/)")


def reconstruction_picture(images) -> np.ndarray:
  """Stacks `(original, masked, reconstructed)` grids of every clip vertically."""
  grid = plots.reconstruction_grid(*(clip[0] for clip in images))
  for i in range(1, len(images[0])):
    grid = np.concatenate([grid, np.full((4,) + grid.shape[1:], 255, np.uint8),
                           plots.reconstruction_grid(*(c[i] for c in images))])
  return grid


def _input_stats(batches) -> Dict[str, Any]:
  stats = dict(batches.stats()) if hasattr(batches, "stats") else {}
  if hasattr(batches, "num_videos"):
    stats["num_videos"] = int(batches.num_videos)
  return stats


class Evaluator:
  """One eval pass over `config`'s eval split (see module docstring).

  Args:
    config: the experiment config (`data`, `eval`, `model`, `mesh`, ...).
    model, mesh: reuse the caller's (the training loop's); else built from
      the config.
  """

  def __init__(self, config, model=None, mesh=None):
    self.config = config
    self.model = build_model(config.model) if model is None else model
    self.mesh = create_mesh(config.mesh) if mesh is None else mesh
    self.objective = objectives.check_mode(config, self.model)
    self.video_shape = inputs.video_shape(config)
    self.class_splits = tuple(int(c) for c in getattr(self.model, "class_splits", ()) or ())
    self._steps: Dict[bool, Any] = {}

  def eval_step(self, shardings, use_ema: bool = False):
    """The jitted eval step for states placed as `shardings`, compiled once."""
    if use_ema not in self._steps:
      images = self.objective == "pretrain" and bool(self.config.eval.num_images)
      self._steps[use_ema] = steps.make_eval_step(
          self.config, self.model, self.mesh, shardings, use_ema=use_ema,
          return_reconstruction=images)
    return self._steps[use_ema]

  def _use_token_merging_of(self, path: str) -> None:
    """A model checkpoint's `model.token_merging` (`vivit-compress
    --token-merging`) applies unless the config sets its own."""
    stored = (checkpoints.load_model_config(path).get("model") or {}).get("token_merging")
    if stored and hasattr(self.model, "token_merging") and not any(self.model.token_merging):
      self.model = self.model.clone(token_merging=tuple(int(r) for r in stored))
      self._steps = {}

  def restore(self, checkpoint: str, allow_init_from: bool = False) -> Restored:
    """The state to evaluate from `checkpoint` (module docstring); raises
    FileNotFoundError when there is none, `ParamMismatchError` on a mismatch."""
    config, seed = self.config, int(self.config.seed)
    kind, path = resolve_checkpoint(checkpoint, allow_empty_workdir=allow_init_from)
    if kind == "model":
      self._use_token_merging_of(path)
    if kind == "model" and checkpoints.load_model_config(path).get("quantization"):
      from vivit_jax.compress import quantize  # pylint: disable=g-import-not-at-top
      self.model, state, shardings, step, labels = quantize.eval_state(
          config, self.model, self.mesh, path)
      self._steps = {}  # the eval step applies the quantized model
      return Restored(state, shardings, step, kind, path, labels)
    if kind == "model":
      state, shardings = steps.init_train_state(config, self.model, self.mesh, seed,
                                                self.video_shape)
      _, params, meta = checkpoints.load_model(path, self.video_shape,
                                               target=distill.student_params(state.params))
      state = state.replace(params=params)
      if state.ema_params is not None:
        state = state.replace(ema_params=params)
      step = (meta.get("source") or {}).get("step")
      return Restored(state, shardings, None if step is None else int(step), kind, path,
                      meta.get("labels"))
    ckpt = train_checkpoints.TrainCheckpointer(path, config.checkpoint)
    try:
      if allow_init_from and not ckpt.all_steps():
        restored = None
      else:
        abstract, shardings = steps.abstract_train_state(config, self.model, self.mesh,
                                                         self.video_shape, seed)
        restored = ckpt.restore_latest(abstract)
    finally:
      ckpt.close()
    if restored is not None:
      step, state, _ = restored
      return Restored(state, shardings, int(step), kind, path)
    if allow_init_from and config.init_from.kind:
      state, shardings = steps.init_train_state(config, self.model, self.mesh, seed,
                                                self.video_shape)
      state = init_from.initialise_state(config, state, self.video_shape)
      return Restored(state, shardings, 0, "init_from", config.init_from.path)
    raise FileNotFoundError(f"nothing to evaluate: {ckpt.directory} holds no training "
                            "checkpoint" + (" and init_from.kind is empty"
                                            if allow_init_from else ""))

  def num_batches(self, batches) -> Optional[int]:
    """Batches one pass reads (None if the iterator does not say)."""
    total = getattr(batches, "num_batches", None)
    limit = int(self.config.eval.num_batches)
    if total is None:
      return limit or None
    return min(total, limit) if limit else total

  def run(self, state, use_ema: bool = False, shuffle_frames: Optional[bool] = None,
          progress: bool = False) -> EvalResult:
    """One pass over the eval split with `state` (a `TrainState` of arrays).

    Args:
      use_ema: evaluate `state.ema_params`.
      shuffle_frames: override `eval.shuffle_frames` (the motion control).
      progress: show a tqdm bar with an ETA (process 0 only).
    """
    config = self.config
    shardings = jax.tree_util.tree_map(lambda x: x.sharding, state)
    eval_step = self.eval_step(shardings, use_ema)
    shuffle = bool(config.eval.shuffle_frames if shuffle_frames is None else shuffle_frames)
    batches = inputs.create_iterator(config, train=False)
    stream = batches
    if progress:
      from tqdm import tqdm  # pylint: disable=g-import-not-at-top
      stream = tqdm(batches, total=self.num_batches(batches), desc="eval", unit="batch",
                    dynamic_ncols=True, disable=not train_logging.is_writer())
    try:
      if self.objective == "pretrain":
        mean, std = objectives.pixel_normalisation(config)
        metrics, images = evaluation.pretrain_pass(
            eval_step, state, self.model, stream, self.mesh, mean, std,
            int(config.eval.num_images), int(config.eval.num_batches))
        pictures = [] if images is None else [("reconstruction",
                                                reconstruction_picture(images))]
        return EvalResult(metrics, pictures, data_stats=_input_stats(batches))
      result = evaluation.classifier_pass(
          eval_step, state, stream, self.mesh, shuffle_frames=shuffle, seed=int(config.seed),
          max_batches=int(config.eval.num_batches), class_splits=self.class_splits)
      # data.class_names name the combined labels; a head's classes have none.
      names = None if self.class_splits else inputs.class_names(config)
      return EvalResult(result.metrics(), confusion_pictures(result, names), result,
                        _input_stats(batches))
    finally:
      if stream is not batches:
        stream.close()
      close = getattr(batches, "close", None)
      if close is not None:
        close()
