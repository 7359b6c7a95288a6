"""The experiment config resolved once into small, typed, frozen specs.

    specs = resolve(config)                              # once, at start-up
    state, shardings = init_train_state(specs.step, model, mesh, specs.seed, clip)
    train_step = make_train_step(specs.step, model, mesh, shardings)
    batches = inputs.create_iterator(specs.data, train=True)

The whole ConfigDict reaches only the main job (`vivit_jax/main.py`), the
loop (`loop.py`) and the start-up checks (`startup.py`, `experiment.py`);
the steps, objectives, optimiser, partitioning, on-device preprocessing,
input code and evaluator take the narrowest spec they need. Each spec
names the config keys it comes from; error messages keep naming those keys
(e.g. "train.grad_accum_steps must be >= 1"). `from_config` only reads:
the checks stay where they were (start-up, or the function that uses the
value), so behaviour and messages are those of the config.

`from_config` accepts the partial configs of `default_train_config()` (no
`eval`, `checkpoint` or `distill` section, `data` with only `mean` / `std`):
a missing key takes its experiment default.

The model and the data pipeline keep their own sub-configs (`config.model`
for `build_model`, `config.data` for `vivit_jax.data.create_iterator`), as
they do in the config files.
"""

import dataclasses
from typing import Any, Optional, Tuple

from vivit_jax.common.constants import IMAGENET_MEAN, IMAGENET_STD
from vivit_jax.train import partitioning


def _section(config, name: str):
  return config.get(name) or {}


def _fields_from(cls, section, **given):
  """`cls` with each field not in `given` read from `section` under its own
  name, cast to its default's type; a missing key keeps the default."""
  defaults = cls()
  values = {}
  for field in dataclasses.fields(cls):
    if field.name not in given:
      default = getattr(defaults, field.name)
      value = section.get(field.name, default)
      values[field.name] = value if value is None or default is None else type(default)(value)
  return cls(**values, **given)


def _float_or_none(value) -> Optional[float]:
  return None if value is None else float(value)


def _floats_or_none(values) -> Optional[Tuple[float, ...]]:
  return None if values is None else tuple(float(v) for v in values)


@dataclasses.dataclass(frozen=True)
class ObjectiveSpec:
  """What the losses and eval functions read (`objectives.py`, `multihead.py`).

  Keys: `mode`; `train.{label_smoothing, mixup_alpha, cutmix_alpha, mix_prob,
  norm_pix_loss, reconstruction_loss}`; `data.{mean, std}` (on [0, 1]; None =
  raw pixels), the normalisation the reconstruction targets undo.
  """
  mode: str = "train"
  label_smoothing: float = 0.0
  mixup_alpha: float = 0.0
  cutmix_alpha: float = 0.0
  mix_prob: float = 1.0
  norm_pix_loss: bool = True
  reconstruction_loss: str = "l2"
  mean: Optional[Tuple[float, ...]] = IMAGENET_MEAN
  std: Optional[Tuple[float, ...]] = IMAGENET_STD

  @classmethod
  def from_config(cls, config) -> "ObjectiveSpec":
    train, data = config.train, _section(config, "data")
    return cls(mode=config.mode, label_smoothing=float(train.label_smoothing),
               mixup_alpha=float(train.mixup_alpha), cutmix_alpha=float(train.cutmix_alpha),
               mix_prob=float(train.mix_prob), norm_pix_loss=bool(train.norm_pix_loss),
               reconstruction_loss=str(train.get("reconstruction_loss", "l2")),
               mean=_floats_or_none(data.get("mean")), std=_floats_or_none(data.get("std")))


@dataclasses.dataclass(frozen=True)
class OptimizerSpec:
  """The optimiser recipe (`optimizer.py`) and the EMA the train step keeps.

  Keys: `optimizer.{name, learning_rate, warmup_steps, end_learning_rate, b1,
  b2, eps, momentum, weight_decay, clip_grad_norm, layer_decay, ema_decay}`,
  `train.num_steps` (the end of the cosine) [steps].
  """
  name: str = "adamw"
  learning_rate: float = 1e-3
  warmup_steps: int = 0
  end_learning_rate: float = 0.0
  b1: float = 0.9
  b2: float = 0.999
  eps: float = 1e-8
  momentum: Optional[float] = 0.9
  weight_decay: Optional[float] = 0.05
  clip_grad_norm: Optional[float] = None
  layer_decay: Optional[float] = None
  ema_decay: Optional[float] = None
  num_steps: int = 1000

  @classmethod
  def from_config(cls, config) -> "OptimizerSpec":
    opt = config.optimizer
    return cls(name=opt.name, learning_rate=float(opt.learning_rate),
               warmup_steps=int(opt.warmup_steps),
               end_learning_rate=float(opt.end_learning_rate), b1=float(opt.b1),
               b2=float(opt.b2), eps=float(opt.eps), momentum=_float_or_none(opt.momentum),
               weight_decay=_float_or_none(opt.weight_decay),
               clip_grad_norm=_float_or_none(opt.clip_grad_norm),
               layer_decay=_float_or_none(opt.layer_decay),
               ema_decay=_float_or_none(opt.ema_decay),
               num_steps=int(config.train.num_steps))


@dataclasses.dataclass(frozen=True)
class PreprocessSpec:
  """On-device preprocessing of uint8 batches (`device_preprocess.py`).

  Keys: `data.{mean, std}` (None = raw pixels on [0, 1]; a config without
  them: ImageNet's), `data.{color_jitter_on_device, color_jitter,
  color_jitter_prob}`.
  """
  mean: Optional[Tuple[float, ...]] = IMAGENET_MEAN
  std: Optional[Tuple[float, ...]] = IMAGENET_STD
  color_jitter_on_device: bool = False
  color_jitter: float = 0.0
  color_jitter_prob: float = 0.8

  @classmethod
  def from_config(cls, config) -> "PreprocessSpec":
    data = _section(config, "data")
    return cls(mean=_floats_or_none(data.get("mean", IMAGENET_MEAN)),
               std=_floats_or_none(data.get("std", IMAGENET_STD)),
               color_jitter_on_device=bool(data.get("color_jitter_on_device", False)),
               color_jitter=float(data.get("color_jitter", 0) or 0),
               color_jitter_prob=float(data.get("color_jitter_prob", 0.8)))


@dataclasses.dataclass(frozen=True)
class DistillSpec:
  """Mode "distill" (`distill.py`): the teacher and the student's clip.

  Keys: `mode`; `distill.{teacher, temperature, alpha, kind, feature_weight}`;
  `data.{num_frames, stride, sampling, image_size}` (the student's clip);
  `model.num_classes` (the student's, checked against the teacher's).
  """
  mode: str = "train"
  teacher: str = ""
  temperature: float = 2.0
  alpha: float = 0.5
  kind: str = "logits"
  feature_weight: float = 1.0
  num_frames: Optional[int] = None
  stride: Optional[int] = None
  sampling: str = "random"
  image_size: Optional[int] = None
  num_classes: Optional[int] = None

  @classmethod
  def from_config(cls, config) -> "DistillSpec":
    d, data = _section(config, "distill"), _section(config, "data")
    int_or_none = lambda v: None if v is None else int(v)
    return cls(mode=config.mode, teacher=str(d.get("teacher", "") or ""),
               temperature=float(d.get("temperature", 2.0)), alpha=float(d.get("alpha", 0.5)),
               kind=str(d.get("kind", "logits")),
               feature_weight=float(d.get("feature_weight", 1.0)),
               num_frames=int_or_none(data.get("num_frames")),
               stride=int_or_none(data.get("stride")),
               sampling=str(data.get("sampling", "random")),
               image_size=int_or_none(data.get("image_size")),
               num_classes=_section(config, "model").get("num_classes"))


@dataclasses.dataclass(frozen=True)
class StepSpec:
  """Everything the train and eval steps read (`steps.py`) and pass on.

  Keys: `train.{grad_accum_steps, nan_policy}`, `sharding.{rules,
  constrain_activations}` (rules normalised, `partitioning.normalise_rules`);
  and the sub-specs' keys: `objective` (`mode`, `train.*` losses),
  `optimizer` (`optimizer.*`), `preprocess` (`data.*` on-device),
  `distill` (`distill.*`).
  """
  grad_accum_steps: int = 1
  nan_policy: str = "stop"
  rules: partitioning.Rules = partitioning.DEFAULT_RULES
  constrain_activations: bool = True
  objective: ObjectiveSpec = ObjectiveSpec()
  optimizer: OptimizerSpec = OptimizerSpec()
  preprocess: PreprocessSpec = PreprocessSpec()
  distill: DistillSpec = DistillSpec()

  @property
  def mode(self) -> str:
    """`mode` (see `objectives.py`)."""
    return self.objective.mode

  @classmethod
  def from_config(cls, config) -> "StepSpec":
    return cls(grad_accum_steps=int(config.train.grad_accum_steps),
               nan_policy=config.train.nan_policy,
               rules=partitioning.normalise_rules(config.sharding.rules),
               constrain_activations=bool(config.sharding.constrain_activations),
               objective=ObjectiveSpec.from_config(config),
               optimizer=OptimizerSpec.from_config(config),
               preprocess=PreprocessSpec.from_config(config),
               distill=DistillSpec.from_config(config))


@dataclasses.dataclass(frozen=True)
class DataSpec:
  """What the train and eval loops read of the input (`inputs.py`).

  Keys: `data.{num_frames, image_size, stride, class_names, resize_short_side,
  eval_resize_short_side, mean, std}`, `train.batch_size`, `eval.batch_size`
  (global, [clips]), `seed`. `data` is the data pipeline's own sub-config
  (`vivit_jax.data.create_iterator`), locked as the experiment config is.
  """
  data: Any
  num_frames: int
  image_size: int
  stride: int
  class_names: Optional[Tuple[str, ...]]
  resize_short_side: int
  mean: Optional[Tuple[float, ...]]
  std: Optional[Tuple[float, ...]]
  train_batch_size: int
  eval_batch_size: int
  seed: int = 0

  @classmethod
  def from_config(cls, config) -> "DataSpec":
    data = config.data
    names = data.class_names
    return cls(data=data, num_frames=int(data.num_frames), image_size=int(data.image_size),
               stride=int(data.stride),
               class_names=tuple(str(n) for n in names) if names else None,
               resize_short_side=int(data.eval_resize_short_side or data.resize_short_side),
               mean=_floats_or_none(data.mean), std=_floats_or_none(data.std),
               train_batch_size=int(config.train.batch_size),
               eval_batch_size=int(_section(config, "eval").get("batch_size", 64)),
               seed=int(config.seed))


@dataclasses.dataclass(frozen=True)
class EvalSpec:
  """One eval pass (`evaluator.py`). Keys: `eval.{every_steps, batch_size,
  num_batches, shuffle_frames, num_images}`, `seed` (the frame shuffle's)."""
  every_steps: int = 1000
  batch_size: int = 64
  num_batches: int = 0
  shuffle_frames: bool = False
  num_images: int = 2
  seed: int = 0

  @classmethod
  def from_config(cls, config) -> "EvalSpec":
    return _fields_from(cls, _section(config, "eval"), seed=int(config.seed))


@dataclasses.dataclass(frozen=True)
class CheckpointSpec:
  """Training checkpoints (`checkpoints/train.py` reads these names).

  Keys: `checkpoint.{every_steps, keep, keep_best, best_metric, best_mode,
  async_save, save_on_sigterm, resume_with_changes}`.
  """
  every_steps: int = 1000
  keep: int = 3
  keep_best: int = 1
  best_metric: str = "eval/top1"
  best_mode: str = "max"
  async_save: bool = True
  save_on_sigterm: bool = True
  resume_with_changes: bool = False

  @classmethod
  def from_config(cls, config) -> "CheckpointSpec":
    return _fields_from(cls, _section(config, "checkpoint"))


@dataclasses.dataclass(frozen=True)
class Specs:
  """The bundle `resolve` builds once: one spec per consumer.

  `model` and `mesh` are the model's and the mesh's own sub-configs
  (`build_model(specs.model)`, `create_mesh(specs.mesh)`); `seed` is `seed`.
  """
  step: StepSpec
  data: DataSpec
  eval: EvalSpec
  checkpoint: CheckpointSpec
  model: Any
  mesh: Any
  seed: int


def resolve(config) -> Specs:
  """The specs of a (locked, checked) experiment config; see module docstring."""
  return Specs(step=StepSpec.from_config(config), data=DataSpec.from_config(config),
               eval=EvalSpec.from_config(config),
               checkpoint=CheckpointSpec.from_config(config), model=config.model,
               mesh=config.mesh, seed=int(config.seed))
