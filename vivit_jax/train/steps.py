"""Sharded train-state creation and the pure, jitted train and eval steps.

  spec = specs.StepSpec.from_config(config)   # or specs.resolve(config).step
  state, shardings = init_train_state(spec, model, mesh, rng, video_shape)
  train_step = make_train_step(spec, model, mesh, shardings)
  eval_step = make_eval_step(spec, model, mesh, shardings)
  for step, local_batch in enumerate(data):
    state, metrics = train_step(state, make_global_batch(local_batch, mesh))
    check_finite(metrics, step, spec.nan_policy)

Parameters and optimiser state are sharded by the logical-axis rules
(`partitioning.py`), created directly in place by `jax.jit` out_shardings;
the batch is split over `("data", "fsdp")`. `train_step` donates the state.

One train step consumes one global batch (the data pipeline makes it
`train.batch_size` examples; the step accepts any size), split into
`train.grad_accum_steps` micro-batches that a `lax.scan` runs one after
another, averaging the gradients. Example `i` of the global batch goes to
micro-batch `i % grad_accum_steps`, so every device keeps its own rows when
`batch / grad_accum_steps` is a multiple of the data x fsdp devices (train
and eval batches must be a multiple of data x fsdp in any case; pad eval
batches and mark padding with `batch["mask"]`).

Metrics (float32 scalars, means over the global batch): `loss`,
`learning_rate` (the schedule at `state.step`), `grad_norm` (global norm of
the averaged gradient, before clipping), `is_finite` (1.0 when loss and
gradient norm are finite, else 0.0), and `accuracy` for classification
(against the un-mixed labels). A non-finite step leaves params, opt_state
and EMA untouched and only advances `step` (so after skipped steps the
optimiser's own schedule count lags `step` by their number); with
`train.nan_policy == "stop"` the caller raises through `check_finite`,
with "skip" training goes on.

Nothing here depends on the model type: inputs for `init` come from the
model's `ModelInterface` and the loss from its objective (`objectives.py`).

Everything here reads a `specs.StepSpec` (config keys: `mode`,
`train.{grad_accum_steps, nan_policy}`, `optimizer.ema_decay`,
`sharding.{rules, constrain_activations}`; and, through the modules they
call, those of optimizer.py, objectives.py, distill.py, device_preprocess.py).
"""

from typing import Any, Callable, Dict, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from vivit_jax.models import registry
from vivit_jax.train import device_preprocess, distill, objectives, partitioning, specs
from vivit_jax.train.distributed import make_global_batch  # noqa: F401  (re-exported)
from vivit_jax.train.mesh import BATCH_AXES
from vivit_jax.train.optimizer import ema_update, make_optimizer
from vivit_jax.train.state import TrainState, as_key_data

NAN_POLICIES = ("stop", "skip")


def _state_factory(spec: specs.StepSpec, model: nn.Module, rng, video_shape: Sequence[int]):
  """`(create, boxed_param_shapes)`: `create()` builds a fresh TrainState."""
  objectives.check_mode(spec.objective, model)
  key = jax.random.wrap_key_data(as_key_data(rng))
  params_key, dropout_key, mask_key, state_key = jax.random.split(key, 4)
  ema_decay = spec.optimizer.ema_decay
  projection = distill.projection_init(spec.distill, model, video_shape)

  def init_params():
    inputs = registry.dummy_inputs(model, video_shape, mask_key)
    params = model.init({"params": params_key, "dropout": dropout_key}, *inputs,
                        train=False)["params"]
    if projection is not None:  # mode "distill": the learned feature projection
      params = dict(params, **{distill.PROJECTION: projection(dropout_key)})
    return params

  boxed = jax.eval_shape(init_params)
  tx, _ = make_optimizer(spec.optimizer, boxed)

  def create():
    params = nn.unbox(init_params())
    ema = jax.tree_util.tree_map(jnp.copy, params) if ema_decay is not None else None
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      opt_state=tx.init(params), ema_params=ema,
                      rng=jax.random.key_data(state_key))

  return create, boxed


def abstract_train_state(spec: specs.StepSpec, model: nn.Module, mesh: jax.sharding.Mesh,
                         video_shape: Sequence[int], rng=0):
  """`(abstract_state, state_shardings)` without computing anything.

  `abstract_state` is a `TrainState` of `jax.ShapeDtypeStruct`s (with their
  shardings), the target a checkpoint restores into; `state_shardings` is
  the `TrainState` of `NamedSharding`s that `init_train_state` returns.
  Arguments as for `init_train_state`.
  """
  create, boxed = _state_factory(spec, model, rng, video_shape)
  param_shardings = partitioning.param_shardings(boxed, mesh, spec.rules)
  abstract = jax.eval_shape(create)
  replicated = partitioning.replicated(mesh)
  shardings = TrainState(
      step=replicated, params=param_shardings,
      opt_state=partitioning.tree_shardings_like_params(
          abstract.opt_state, abstract.params, param_shardings, mesh),
      ema_params=param_shardings if abstract.ema_params is not None else None,
      rng=replicated)
  abstract = jax.tree_util.tree_map(
      lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings)
  return abstract, shardings


def init_train_state(spec: specs.StepSpec, model: nn.Module, mesh: jax.sharding.Mesh, rng,
                     video_shape: Sequence[int], *,
                     compiler_options: Optional[Dict[str, Any]] = None):
  """A freshly initialised, sharded `TrainState` and its shardings.

  Args:
    spec: the step spec (`specs.StepSpec.from_config(config)`).
    model: the module of `build_model(config.model)`.
    mesh: from `mesh.create_mesh`.
    rng: an int seed, a typed PRNG key or raw `uint32[2]` key data.
    video_shape: `(T, H, W, C)` (or with a leading batch axis) of one clip.
    compiler_options: XLA options for this compilation (`jax.jit`'s
      `compiler_options`), e.g. `{"xla_backend_optimization_level": 0}` for
      quick CPU tests.

  Returns:
    `(state, state_shardings)`: state arrays live where `state_shardings`
    (a `TrainState` of `NamedSharding`s) says; the jitted initialiser writes
    each shard in place, never the whole state on one device. The same
    `rng` gives the same values on any mesh.
  """
  create, _ = _state_factory(spec, model, rng, video_shape)
  _, shardings = abstract_train_state(spec, model, mesh, video_shape, rng)
  state = jax.jit(create, out_shardings=shardings, compiler_options=compiler_options)()
  return state, shardings


def _split_micro_batches(batch: Dict[str, jax.Array], num: int, mesh: jax.sharding.Mesh):
  """`(B, ...)` -> `(num, B / num, ...)`; micro-batch k holds rows `i % num == k`."""
  sharding = NamedSharding(mesh, PartitionSpec(None, BATCH_AXES))

  def split(x):
    if x.shape[0] % num:
      raise ValueError(f"batch of {x.shape[0]} is not divisible by "
                       f"train.grad_accum_steps={num}")
    x = x.reshape((x.shape[0] // num, num) + x.shape[1:]).swapaxes(0, 1)
    return jax.lax.with_sharding_constraint(x, sharding)

  return jax.tree_util.tree_map(split, batch)


def _tree_select(pred, on_true, on_false):
  return jax.tree_util.tree_map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


def make_train_step(spec: specs.StepSpec, model: nn.Module, mesh: jax.sharding.Mesh,
                    state_shardings: TrainState, *,
                    compiler_options: Optional[Dict[str, Any]] = None,
                    teacher: Optional["distill.Teacher"] = None) -> Callable:
  """The jitted `train_step(state, batch) -> (state, metrics)`; donates `state`.

  Args:
    spec, model, mesh, compiler_options: as for `init_train_state`.
    state_shardings: the second result of `init_train_state`.
    teacher: mode "distill": the frozen teacher (`distill.load_teacher`);
      its params are a further, non-donated argument of the jitted step
      (bound here, so callers still call `train_step(state, batch)`).

  Returns:
    A `jax.jit` function. `batch` is a dict of global arrays (`video`,
    `label` for classification) sharded as `partitioning.batch_sharding`;
    metrics are replicated float32 scalars (module docstring).
  """
  if teacher is not None:
    loss_fn = distill.make_loss_fn(spec, model, teacher)
  else:
    loss_fn = objectives.make_loss_fn(spec.objective, model)
  rules, constrain = spec.rules, spec.constrain_activations
  num_micro = int(spec.grad_accum_steps)
  if num_micro < 1:
    raise ValueError(f"train.grad_accum_steps must be >= 1, got {num_micro}")
  if spec.nan_policy not in NAN_POLICIES:
    raise ValueError(f"train.nan_policy must be one of {NAN_POLICIES}, "
                     f"got {spec.nan_policy!r}")
  ema_decay = spec.optimizer.ema_decay
  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

  def constrain_like_params(tree):
    return jax.lax.with_sharding_constraint(tree, state_shardings.params)

  def compute_grads(params, batch, key, *frozen):
    if num_micro == 1:
      (loss, aux), grads = grad_fn(params, batch, key, *frozen)
      return grads, dict(aux, loss=loss)
    micro = _split_micro_batches(batch, num_micro, mesh)

    def body(carry, xs):
      acc_grads, acc_metrics = carry
      index, micro_batch = xs
      (loss, aux), grads = grad_fn(params, micro_batch, jax.random.fold_in(key, index),
                                   *frozen)
      acc_grads = jax.tree_util.tree_map(lambda a, g: a + g.astype(a.dtype), acc_grads, grads)
      metrics = dict(aux, loss=loss)
      acc_metrics = jax.tree_util.tree_map(jnp.add, acc_metrics, metrics)
      return (constrain_like_params(acc_grads), acc_metrics), None

    zeros = constrain_like_params(
        jax.tree_util.tree_map(lambda p: jnp.zeros(p.shape, jnp.float32), params))
    metric_shapes = jax.eval_shape(lambda: grad_fn(params, jax.tree_util.tree_map(
        lambda x: x[0], micro), key, *frozen))[0]
    zero_metrics = jax.tree_util.tree_map(
        lambda s: jnp.zeros(s.shape, s.dtype), dict(metric_shapes[1], loss=metric_shapes[0]))
    (grads, metrics), _ = jax.lax.scan(body, (zeros, zero_metrics),
                                       (jnp.arange(num_micro), micro))
    grads = jax.tree_util.tree_map(lambda g: g / num_micro, grads)
    metrics = jax.tree_util.tree_map(lambda m: m / num_micro, metrics)
    return grads, metrics

  def train_step(state: TrainState, batch: Dict[str, jax.Array], *frozen):
    batch = device_preprocess.prepare_batch(  # uint8 video -> (jittered,) normalised
        batch, spec.preprocess, jax.random.fold_in(jax.random.fold_in(state.key(), state.step),
                                          device_preprocess.JITTER_SALT))
    with partitioning.activation_rules(mesh, rules, constrain):
      tx, schedule = make_optimizer(spec.optimizer, state.params)
      key = jax.random.fold_in(state.key(), state.step)
      grads, metrics = compute_grads(state.params, batch, key, *frozen)
      grads = jax.tree_util.tree_map(lambda g, p: g.astype(p.dtype), grads, state.params)
      grad_norm = global_norm(grads)
      updates, opt_state = tx.update(grads, state.opt_state, state.params)
      params = jax.tree_util.tree_map(lambda p, u: (p + u).astype(p.dtype),
                                      state.params, updates)
      is_finite = jnp.isfinite(metrics["loss"]) & jnp.isfinite(grad_norm)
      params = _tree_select(is_finite, params, state.params)
      opt_state = _tree_select(is_finite, opt_state, state.opt_state)
      ema = state.ema_params
      if ema is not None:
        ema = _tree_select(is_finite, ema_update(ema, params, float(ema_decay)), ema)
      new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                                ema_params=ema)
      metrics = dict(metrics, learning_rate=schedule(state.step), grad_norm=grad_norm,
                     is_finite=is_finite)
      metrics = {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}
    return new_state, metrics

  in_shardings = (state_shardings, partitioning.batch_sharding(mesh))
  if teacher is not None:
    in_shardings += (teacher.shardings,)
  jitted = jax.jit(train_step, in_shardings=in_shardings,
                   out_shardings=(state_shardings, partitioning.replicated(mesh)),
                   donate_argnums=(0,), compiler_options=compiler_options)
  if teacher is None:
    return jitted
  return lambda state, batch: jitted(state, batch, teacher.params)


def global_norm(tree) -> jax.Array:
  """Global L2 norm over all leaves, in float32."""
  leaves = jax.tree_util.tree_leaves(tree)
  return jnp.sqrt(sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in leaves))


def make_eval_step(spec: specs.StepSpec, model: nn.Module, mesh: jax.sharding.Mesh,
                   state_shardings: TrainState, *, use_ema: bool = False,
                   return_reconstruction: bool = False,
                   compiler_options: Optional[Dict[str, Any]] = None) -> Callable:
  """The jitted `eval_step(state, batch) -> metrics` (no dropout, no donation).

  Args:
    spec, model, mesh, state_shardings, compiler_options: as for
      `make_train_step`.
    use_ema: evaluate `state.ema_params` (must exist) instead of `params`.
    return_reconstruction: pretraining objective; adds `reconstruction` and
      the token `mask` it used.

  Returns:
    A `jax.jit` function. Scalars (`loss`, `accuracy`, `num_examples`) are
    replicated and averaged over the real examples (`batch["mask"]`, if
    given, marks padding with 0); per-example outputs (`logits (B, C)`,
    `reconstruction`, `mask`) are batch-sharded. See `objectives.make_eval_fn`.
  """
  eval_fn = objectives.make_eval_fn(spec.objective, model, return_reconstruction)
  rules, constrain = spec.rules, spec.constrain_activations
  if use_ema and state_shardings.ema_params is None:
    raise ValueError("use_ema=True needs optimizer.ema_decay set (the state has no EMA)")
  per_example = partitioning.batch_sharding(mesh)
  replicated = partitioning.replicated(mesh)

  def eval_step(state: TrainState, batch: Dict[str, jax.Array]) -> Dict[str, Any]:
    batch = device_preprocess.prepare_batch(batch, spec.preprocess)  # uint8 video -> normalised
    with partitioning.activation_rules(mesh, rules, constrain):
      params = state.ema_params if use_ema else state.params
      key = jax.random.fold_in(state.key(), objectives.EVAL_MASK_SEED)
      metrics = eval_fn(params, batch, key)
    return {k: jax.lax.with_sharding_constraint(v, per_example) if v.ndim
            else jax.lax.with_sharding_constraint(jnp.asarray(v, jnp.float32), replicated)
            for k, v in metrics.items()}

  return jax.jit(eval_step, in_shardings=(state_shardings, per_example),
                 compiler_options=compiler_options)


def check_finite(metrics: Dict[str, Any], step: int, nan_policy: str = "stop") -> None:
  """Raises `FloatingPointError` naming `step` if the step's loss was not finite.

  Args:
    metrics: a train step's metrics (reads `is_finite`, reports `loss`).
    step: the step number to name in the message.
    nan_policy: "stop" raises; "skip" returns (the step already left the
      state unchanged).
  """
  if nan_policy not in NAN_POLICIES:
    raise ValueError(f"nan_policy must be one of {NAN_POLICIES}, got {nan_policy!r}")
  if bool(np.asarray(metrics["is_finite"])) or nan_policy == "skip":
    return
  loss = float(np.asarray(metrics.get("loss", np.nan)))
  grad_norm = float(np.asarray(metrics.get("grad_norm", np.nan)))
  raise FloatingPointError(
      f"non-finite training loss at step {step}: loss={loss}, grad_norm={grad_norm}; "
      "params were left unchanged (train.nan_policy='skip' keeps going)")
