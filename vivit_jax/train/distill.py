"""Knowledge distillation: `mode="distill"` trains a classifier against a frozen teacher.

    config.mode = "distill"
    config.distill.teacher = "teacher_workdir/model"     # any model checkpoint dir

The teacher is a model checkpoint (`WORKDIR/model` of a classifier run, or a
converted Hugging Face checkpoint) loaded with `checkpoints.load_model`. Its
parameters are an extra argument of the same jitted train step, placed by
the same logical-axis rules as the student's; they are not in the train
state, so the optimiser never sees them and the student's checkpoints and
`WORKDIR/model/` never hold them.

Loss per step (student logits `s`, teacher logits `t`, both `(B, C)`):

    loss = (1 - alpha) * CE(s, hard targets)                 # the train-mode loss
         + alpha * T^2 * mean_b KL(softmax(t / T) || softmax(s / T))
         + feature_weight * MSE(proj(student tokens), teacher tokens)   # logits+features

`alpha = 0` with kind "logits" is exactly the hard-label step. The hard
targets are the train mode's (label smoothing, Mixup / CutMix); the teacher
sees the same mixed clip. The features are the final encoder tokens a model
sows as `intermediates/tokens` `(B, L, D)`; `proj` is a learned `D_s -> D_t`
dense layer (parameters under `params["distill_projection"]`, trained with
the student, dropped from `WORKDIR/model/`) when the widths differ, else
the identity. With different token counts `L` (other patch size or frames)
the token means `(B, D)` are compared instead.

Frames: `data.*` describes the student's clip (eval, `WORKDIR/model/`'s
input). A teacher whose checkpoint input has `k` times the frames at `1/k`
the stride (the same time span) gets the full clip in training; the student
sees every k-th frame of it, which is exactly its own clip.

Config keys (`distill.*`; checked by `validate`, one line naming the key;
the steps read them from `specs.DistillSpec`):
  teacher         model checkpoint dir of the teacher.
  temperature     softmax temperature T (> 0).
  alpha           weight of the soft KL term in [0, 1].
  kind            "logits" or "logits+features".
  feature_weight  weight of the feature MSE (kind "logits+features"), >= 0.
"""

import dataclasses
import os
from typing import Any, Callable, Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from vivit_jax import checkpoints
from vivit_jax.models import registry
from vivit_jax.train import mixing, objectives, partitioning
from vivit_jax.train.specs import DistillSpec, StepSpec

KINDS = ("logits", "logits+features")
PROJECTION = "distill_projection"  # the learned feature projection's key in state.params
FEATURE_COLLECTION, FEATURE_NAME = "intermediates", "tokens"


def default_config() -> ml_collections.ConfigDict:
  """The `distill` section at its defaults (see module docstring)."""
  return ml_collections.ConfigDict(dict(teacher="", temperature=2.0, alpha=0.5,
                                        kind="logits", feature_weight=1.0))


def active(config) -> bool:
  """Whether the config trains in mode "distill"."""
  return config.mode == "distill"


def _fail(key: str, message: str):
  raise ValueError(f"distill.{key}{'' if message.startswith('=') else ' '}{message}")


def validate(config) -> None:
  """Raises ValueError naming the first bad `distill.*` key (mode "distill" only)."""
  if not active(config):
    return
  d = config.distill
  if not d.teacher:
    _fail("teacher", "is empty: set it to a model checkpoint dir (e.g. TEACHER_WORKDIR/model)")
  if not os.path.exists(os.path.join(d.teacher, checkpoints.CONFIG_FILE)):
    _fail("teacher", f"={d.teacher!r} is not a model checkpoint (no "
          f"{checkpoints.CONFIG_FILE}); point it at a WORKDIR/model or converted checkpoint")
  if not float(d.temperature) > 0:
    _fail("temperature", f"must be > 0, got {d.temperature}")
  if not 0.0 <= float(d.alpha) <= 1.0:
    _fail("alpha", f"must be in [0, 1], got {d.alpha}")
  if d.kind not in KINDS:
    _fail("kind", f"must be one of {KINDS}, got {d.kind!r}")
  if float(d.feature_weight) < 0:
    _fail("feature_weight", f"must be >= 0, got {d.feature_weight}")
  if config.model.get("class_splits", None):
    raise ValueError("model.class_splits: mode='distill' needs a single-head student")
  try:
    meta = checkpoints.load_model_config(d.teacher)
  except FileNotFoundError as e:  # A training workdir: the message names its WORKDIR/model.
    _fail("teacher", f"={d.teacher!r}: {e}")
  if registry.objective_of(meta["model"]) != "classification":
    _fail("teacher", f"={d.teacher!r} is not a classifier (objective "
          f"{registry.objective_of(meta['model'])!r})")
  teacher_frames(DistillSpec.from_config(config), meta)


def teacher_frames(spec: DistillSpec, meta=None) -> Tuple[int, int, int]:
  """`(frames, stride, k)` of the teacher's clip; the student takes every k-th frame."""
  meta = checkpoints.load_model_config(spec.teacher) if meta is None else meta
  frames, stride = int(spec.num_frames), int(spec.stride)
  stored = meta.get("input") or {}
  t_frames, t_stride = stored.get("num_frames"), stored.get("frame_stride")
  if t_frames is None or int(t_frames) == frames:
    return frames, stride, 1
  t_frames, t_stride = int(t_frames), int(t_stride or stride)
  k = t_frames // frames
  if t_frames % frames or t_stride * k != stride or spec.sampling != "random":
    _fail("teacher", f"takes {t_frames} frames at stride {t_stride}: the student's "
          f"data.num_frames={frames} / data.stride={stride} must be the same span with k "
          f"times fewer frames (k * {t_stride} == data.stride, data.sampling='random')")
  return t_frames, t_stride, k


def train_input_config(config):
  """The config the train iterator reads: `data` with the teacher's clip."""
  frames, stride, k = teacher_frames(DistillSpec.from_config(config))
  if k == 1:
    return config
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.data.num_frames, config.data.stride = frames, stride
  return config


def _tokens(model: nn.Module, params, video, **kwargs):
  logits, state = model.apply({"params": params}, video, mutable=[FEATURE_COLLECTION],
                              **kwargs)
  tokens = state.get(FEATURE_COLLECTION, {}).get(FEATURE_NAME)
  if tokens is None:
    raise ValueError(f"distill.kind='logits+features' needs a model that sows "
                     f"{FEATURE_COLLECTION}/{FEATURE_NAME}; {type(model).__name__} does not")
  return logits, tokens[0]


def _teacher_model(path: str) -> Tuple[nn.Module, dict]:
  meta = checkpoints.load_model_config(path)
  return registry.build_model(meta["model"]), meta


def _width(model: nn.Module, video_shape: Sequence[int]) -> int:
  inputs = registry.dummy_inputs(model, video_shape)
  shapes = jax.eval_shape(lambda: _tokens(model, nn.unbox(model.init(
      jax.random.PRNGKey(0), *inputs)["params"]), *inputs))
  return int(shapes[1].shape[-1])


def projection_init(spec: DistillSpec, model: nn.Module, video_shape: Sequence[int]
                    ) -> Optional[Callable[[jax.Array], dict]]:
  """`init(key) -> {"kernel" (D_s, D_t), "bias" (D_t,)}`, or None (no projection needed)."""
  # mode "eval" of a distill config: the training checkpoints hold the projection.
  if spec.mode not in ("distill", "eval") or not spec.teacher or spec.kind != "logits+features":
    return None
  teacher, _ = _teacher_model(spec.teacher)
  frames, _, _ = teacher_frames(spec)
  d_s = _width(model, video_shape)
  d_t = _width(teacher, (frames,) + tuple(video_shape)[-3:])
  if d_s == d_t:
    return None

  def init(key):
    return {"kernel": nn.initializers.lecun_normal()(key, (d_s, d_t), jnp.float32),
            "bias": jnp.zeros((d_t,), jnp.float32)}

  return init


def student_params(params):
  """The student's own parameters (without the feature projection)."""
  return {k: v for k, v in params.items() if k != PROJECTION}


@dataclasses.dataclass
class Teacher:
  """A frozen teacher: its module, sharded params and the student's frame step `k`."""
  model: nn.Module
  params: Any
  shardings: Any
  subsample: int
  path: str


def load_teacher(spec: StepSpec, mesh: jax.sharding.Mesh) -> Teacher:
  """Restores `distill.teacher` onto `mesh`, sharded by `sharding.rules`."""
  d = spec.distill
  path = d.teacher
  model, meta = _teacher_model(path)
  frames, _, k = teacher_frames(d, meta)
  size = int(d.image_size)
  shape = (frames, size, size, 3)
  boxed = registry.abstract_params(model, shape)
  shardings = partitioning.param_shardings(boxed, mesh, spec.rules)
  target = jax.tree_util.tree_map(
      lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), nn.unbox(boxed),
      shardings)
  model, params, _ = checkpoints.load_model(path, shape, target=target)
  if model.num_classes != d.num_classes:
    _fail("teacher", f"has {model.num_classes} classes, the student "
          f"model.num_classes={d.num_classes}")
  return Teacher(model, params, shardings, k, path)


def kl_to_teacher(student_logits, teacher_logits, temperature: float) -> jax.Array:
  """`T^2 * KL(softmax(t/T) || softmax(s/T))` per example, float32 `(B,)`."""
  t = jnp.asarray(teacher_logits, jnp.float32) / temperature
  s = jnp.asarray(student_logits, jnp.float32) / temperature
  log_pt, log_ps = jax.nn.log_softmax(t, -1), jax.nn.log_softmax(s, -1)
  return temperature ** 2 * jnp.sum(jnp.exp(log_pt) * (log_pt - log_ps), axis=-1)


def feature_mse(student_tokens, teacher_tokens, projection=None) -> jax.Array:
  """MSE between projected student and teacher tokens `(B, L, D)` (means if L differs)."""
  s = jnp.asarray(student_tokens, jnp.float32)
  t = jnp.asarray(teacher_tokens, jnp.float32)
  if s.shape[1] != t.shape[1]:
    s, t = jnp.mean(s, axis=1), jnp.mean(t, axis=1)
  if projection is not None:
    s = s @ projection["kernel"] + projection["bias"]
  return jnp.mean(jnp.square(s - t))


def make_loss_fn(spec: StepSpec, model: nn.Module, teacher: Teacher) -> Callable:
  """`loss_fn(params, batch, rng, teacher_params) -> (loss, metrics)`.

  `batch["video"]` is the teacher's clip `(B, T_t, H, W, C)`; the student
  sees `video[:, ::k]`. Metrics: `accuracy`, `hard_loss`, `soft_loss` and,
  for "logits+features", `feature_loss`.
  """
  objectives.check_mode(spec.objective, model)
  tc, d = spec.objective, spec.distill
  alpha, temperature = float(d.alpha), float(d.temperature)
  features = d.kind == "logits+features"
  weight = float(d.feature_weight)
  k = teacher.subsample

  def loss_fn(params, batch, rng, teacher_params):
    video, labels = batch["video"], batch["label"]
    targets = mixing.one_hot_targets(labels, model.num_classes, float(tc.label_smoothing))
    video, targets, _ = mixing.mix_batch(
        jax.random.fold_in(rng, objectives.MIX), video, targets,
        mixup_alpha=float(tc.mixup_alpha), cutmix_alpha=float(tc.cutmix_alpha),
        mix_prob=float(tc.mix_prob))
    student_video = video[:, ::k] if k > 1 else video
    kwargs = dict(train=True, rngs={"dropout": jax.random.fold_in(rng, objectives.DROPOUT)})
    if features:
      logits, tokens = _tokens(model, student_params(params), student_video, **kwargs)
      t_logits, t_tokens = _tokens(teacher.model, teacher_params, video, train=False)
    else:
      logits = model.apply({"params": params}, student_video, **kwargs)
      t_logits = teacher.model.apply({"params": teacher_params}, video, train=False)
    t_logits = jax.lax.stop_gradient(t_logits)
    hard = jnp.mean(objectives.softmax_cross_entropy(logits, targets))
    soft = jnp.mean(kl_to_teacher(logits, t_logits, temperature))
    loss = hard if alpha == 0.0 else (1.0 - alpha) * hard + alpha * soft
    metrics = {"accuracy": jnp.mean((jnp.argmax(logits, -1) == labels).astype(jnp.float32)),
               "hard_loss": hard, "soft_loss": soft}
    if features:
      feat = feature_mse(tokens, jax.lax.stop_gradient(t_tokens), params.get(PROJECTION))
      loss = loss + weight * feat
      metrics["feature_loss"] = feat
    return loss, metrics

  return loss_fn
