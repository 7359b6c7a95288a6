"""One evaluator: `Evaluator(config).run(state)`, and the one way to find the state.

    evaluator = Evaluator(config)                     # model and mesh from the config
    restored = evaluator.restore("WORKDIR or CKPT_DIR")
    result = evaluator.run(restored.state)            # result.metrics["eval/top1"], ...

The training loop's periodic eval, `mode=eval` and `vivit-evaluate` all use
it: the eval step is compiled once per evaluator (one step also returns a
pretraining model's reconstruction and its token mask for the PNG), and
`restore` is the single checkpoint resolution:

  * a model checkpoint dir (`config.json` + `params/`): `checkpoints.load_model`
    into a fresh train state (an int8 one of `vivit-compress`: its params,
    replicated, and its quantized model replaces the evaluator's);
  * a training workdir or its `checkpoints/` folder: the newest readable
    step (`TrainCheckpointer.restore_latest`); with `allow_init_from`, an
    empty workdir falls back to `config.init_from` (mode=eval).

What a pass computes is an evaluation picked by name (`registry.py`): the
model's objective by default, "classification" (metric keys: `passes.py`) or
"pretrain" (`eval/loss`, `eval/num_clips`, ...), both registered below.
"""

import dataclasses
from typing import Any, Dict, List, Optional, Tuple

import jax
import numpy as np

from vivit_jax import checkpoints
from vivit_jax.checkpoints import init_from
from vivit_jax.checkpoints import train as train_checkpoints
from vivit_jax.checkpoints import workdir
from vivit_jax.common import console
from vivit_jax.models import build_model
from vivit_jax.train import distill, inputs, multihead, objectives, specs, steps
from vivit_jax.train.evaluation import confusion, passes, plots, registry
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
  classifier: Optional[passes.ClassifierPass] = None
  data_stats: Dict[str, Any] = dataclasses.field(default_factory=dict)

  @property
  def image(self) -> Optional[Tuple[str, np.ndarray]]:
    """The first of `images`, or None."""
    return self.images[0] if self.images else None


def confusion_pictures(result: passes.ClassifierPass, names=None
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


def reconstruction_picture(images) -> np.ndarray:
  """Stacks `(original, masked, reconstructed)` grids of every clip vertically."""
  grid = plots.reconstruction_grid(*(clip[0] for clip in images))
  for i in range(1, len(images[0])):
    grid = np.concatenate([grid, np.full((4,) + grid.shape[1:], 255, np.uint8),
                           plots.reconstruction_grid(*(c[i] for c in images))])
  return grid


@registry.register_evaluation("classification")
def classification(evaluator: "Evaluator", eval_step, state, batches,
                   shuffle_frames: bool) -> EvalResult:
  """Top-1 / top-5 / mean class accuracy over averaged views, and the confusion
  picture(s) (`passes.classifier_pass`; multi-head models per head too)."""
  spec = evaluator.specs.eval
  result = passes.classifier_pass(
      eval_step, state, batches, evaluator.mesh, shuffle_frames=shuffle_frames,
      seed=spec.seed, max_batches=spec.num_batches, class_splits=evaluator.class_splits)
  # data.class_names name the combined labels; a head's classes have none.
  names = None if evaluator.class_splits else inputs.class_names(evaluator.specs.data)
  return EvalResult(result.metrics(), confusion_pictures(result, names), result)


@registry.register_evaluation("pretrain")
def pretrain(evaluator: "Evaluator", eval_step, state, batches,
             shuffle_frames: bool) -> EvalResult:
  """The masked-reconstruction metrics over the eval split and a reconstruction
  picture (`passes.pretrain_pass`)."""
  del shuffle_frames  # the motion control applies to classification
  spec = evaluator.specs.eval
  mean, std = objectives.pixel_normalisation(evaluator.specs.step.objective)
  metrics, images = passes.pretrain_pass(
      eval_step, state, evaluator.model, batches, evaluator.mesh, mean, std,
      spec.num_images, spec.num_batches)
  pictures = [] if images is None else [("reconstruction", reconstruction_picture(images))]
  return EvalResult(metrics, pictures)


def _input_stats(batches) -> Dict[str, Any]:
  stats = dict(batches.stats()) if hasattr(batches, "stats") else {}
  if hasattr(batches, "num_videos"):
    stats["num_videos"] = int(batches.num_videos)
  return stats


class Evaluator:
  """One eval pass over `config`'s eval split (see module docstring).

  Args:
    config: the experiment config, resolved once into `self.specs`
      (`specs.resolve`); the steps and the input take those. Only `restore`'s
      `init_from` fallback reads the config itself.
    model, mesh: reuse the caller's (the training loop's); else built from
      the config.
    evaluation: the registered evaluation a pass runs (`registry.py`);
      default: the one named by the model's objective.
  """

  def __init__(self, config, model=None, mesh=None, evaluation: Optional[str] = None):
    self.config = config
    self.specs = specs.resolve(config)
    self.model = build_model(self.specs.model) if model is None else model
    self.mesh = create_mesh(self.specs.mesh) if mesh is None else mesh
    self.objective = objectives.check_mode(self.specs.step.objective, self.model)
    self.evaluation = evaluation or self.objective
    registry.get_evaluation(self.evaluation)  # an unknown name fails here, not after a restore
    self.video_shape = inputs.video_shape(self.specs.data)
    self.class_splits = tuple(int(c) for c in getattr(self.model, "class_splits", ()) or ())
    self._steps: Dict[bool, Any] = {}

  def eval_step(self, shardings, use_ema: bool = False):
    """The jitted eval step for states placed as `shardings`, compiled once."""
    if use_ema not in self._steps:
      images = self.objective == "pretrain" and bool(self.specs.eval.num_images)
      self._steps[use_ema] = steps.make_eval_step(
          self.specs.step, self.model, self.mesh, shardings, use_ema=use_ema,
          return_reconstruction=images)
    return self._steps[use_ema]

  def _use_token_merging_of(self, config: Dict[str, Any]) -> None:
    """A model checkpoint's `model.token_merging` (its config.json `config`,
    written by `vivit-compress --token-merging`) applies unless the
    experiment config sets its own."""
    stored = (config.get("model") or {}).get("token_merging")
    if stored and hasattr(self.model, "token_merging") and not any(self.model.token_merging):
      self.model = self.model.clone(token_merging=tuple(int(r) for r in stored))
      self._steps = {}

  def restore(self, checkpoint: str, allow_init_from: bool = False) -> Restored:
    """The state to evaluate from `checkpoint` (module docstring); raises
    FileNotFoundError when there is none, `ParamMismatchError` on a mismatch."""
    config, resolved, seed = self.config, self.specs, self.specs.seed
    kind, path = workdir.resolve_checkpoint(checkpoint, allow_empty_workdir=allow_init_from)
    stored = checkpoints.load_model_config(path) if kind == "model" else {}
    if kind == "model":
      self._use_token_merging_of(stored)
    if stored.get("quantization"):  # an int8 checkpoint of `vivit-compress`
      return self._restore_quantized(path, stored)
    if kind == "model":
      state, shardings = steps.init_train_state(resolved.step, self.model, self.mesh, seed,
                                                self.video_shape)
      _, params, meta = checkpoints.load_model(path, self.video_shape,
                                               target=distill.student_params(state.params))
      state = state.replace(params=params)
      if state.ema_params is not None:
        state = state.replace(ema_params=params)
      step = (meta.get("source") or {}).get("step")
      return Restored(state, shardings, None if step is None else int(step), kind, path,
                      meta.get("labels"))
    ckpt = train_checkpoints.TrainCheckpointer(path, resolved.checkpoint, read_only=True)
    try:
      if allow_init_from and not ckpt.all_steps():
        restored = None
      else:
        abstract, shardings = steps.abstract_train_state(resolved.step, self.model, self.mesh,
                                                         self.video_shape, seed)
        restored = ckpt.restore_latest(abstract)
    finally:
      ckpt.close()
    if restored is not None:
      step, state, _ = restored
      return Restored(state, shardings, int(step), kind, path)
    if allow_init_from and config.init_from.kind:
      state, shardings = steps.init_train_state(resolved.step, self.model, self.mesh, seed,
                                                self.video_shape)
      state = init_from.initialise_state(config, state, self.video_shape)
      return Restored(state, shardings, 0, "init_from", config.init_from.path)
    raise FileNotFoundError(f"nothing to evaluate: {ckpt.directory} holds no training "
                            "checkpoint" + (" and init_from.kind is empty"
                                            if allow_init_from else ""))

  def _restore_quantized(self, path: str, stored) -> Restored:
    """A fresh train state whose `params` are the int8 checkpoint's (replicated
    over the mesh); the evaluator then applies the quantized model."""
    state, shardings = steps.init_train_state(self.specs.step, self.model, self.mesh,
                                              self.specs.seed, self.video_shape)
    qmodel, params = checkpoints.load_quantized(path, self.model, self.video_shape, stored)
    replicated = jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec())
    params = jax.device_put(params, replicated)
    params_shardings = jax.tree_util.tree_map(lambda _: replicated, params)
    state = state.replace(params=params, ema_params=None)
    shardings = shardings.replace(params=params_shardings, ema_params=None)
    self.model, self._steps = qmodel, {}  # the eval step applies the quantized model
    step = (stored.get("source") or {}).get("step")
    return Restored(state, shardings, None if step is None else int(step), "model", path,
                    stored.get("labels"))

  def num_batches(self, batches) -> Optional[int]:
    """Batches one pass reads (None if the iterator does not say)."""
    total = getattr(batches, "num_batches", None)
    limit = self.specs.eval.num_batches
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
    spec = self.specs.eval
    shardings = jax.tree_util.tree_map(lambda x: x.sharding, state)
    eval_step = self.eval_step(shardings, use_ema)
    shuffle = bool(spec.shuffle_frames if shuffle_frames is None else shuffle_frames)
    batches = inputs.create_iterator(self.specs.data, train=False)
    stream = batches
    if progress:
      from tqdm import tqdm  # pylint: disable=g-import-not-at-top
      stream = tqdm(batches, total=self.num_batches(batches), desc="eval", unit="batch",
                    dynamic_ncols=True, disable=not console.is_writer())
    try:
      result = registry.get_evaluation(self.evaluation)(self, eval_step, state, stream, shuffle)
      result.data_stats = _input_stats(batches)
      return result
    finally:
      if stream is not batches:
        stream.close()
      close = getattr(batches, "close", None)
      if close is not None:
        close()
