"""Run modes and the training objectives, as pure functions of (params, batch, rng).

The objective comes from the model (`ModelInterface.objective`), not the mode:
  classification: logits `(B, C)`, softmax cross-entropy against
      label-smoothed, Mixup/CutMix-mixed targets.
  pretrain: a masked autoencoder; a token mask is drawn per step, the loss is
      the mean squared error of the hidden tubelets' (normalised) pixels.
A model registered with either objective trains with no change here.

Modes (`config.mode`, checked here and nowhere else): "train" (alias
"finetune") trains, "eval" evaluates only; "distill" trains a classifier
against a frozen teacher (`distill.py`); "pretrain" is "train" that also
insists on a pretraining model (what the pretraining configs say).

Config keys read: `train.{label_smoothing, mixup_alpha, cutmix_alpha,
mix_prob, norm_pix_loss, reconstruction_loss}`, `data.{mean, std}` (the input normalisation the
reconstruction targets undo); the mask comes from the model's `mask_type`,
`mask_ratio`, `future_frames`.

PRNG streams: the step's key is folded with `DROPOUT`, `MIX` and `MASK` so
each use has its own stream.

Batch: `video (B, T, H, W, C)` normalised float, `label (B,)` int32; eval
batches may add `mask (B,)` (1 = real example, 0 = padding).
"""

from typing import Any, Callable, Dict, Optional, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from vivit_jax.models import axes, embedding, forecast_metrics, masking, registry, videomae
from vivit_jax.train import mixing, multihead

MODES = ("train", "finetune", "pretrain", "distill", "eval")
TRAIN_MODES = ("train", "finetune", "pretrain", "distill")
DROPOUT, MIX, MASK = 0, 1, 2
EVAL_MASK_SEED = 12345  # pretrain eval: one fixed token mask (given the state's key)

LossFn = Callable[..., Tuple[jax.Array, Dict[str, jax.Array]]]


def run_mode(config) -> str:
  """"train" or "eval" for `config.mode` (ValueError naming the valid modes)."""
  if config.mode not in MODES:
    raise ValueError(f"mode must be one of {MODES}, got {config.mode!r}")
  return "eval" if config.mode == "eval" else "train"


def check_mode(config, model) -> str:
  """The objective of `model` (a module or a model config), checked against the mode.

  Raises ValueError for an unknown mode, mode "pretrain" with a
  non-pretraining model, mode "finetune" with a pretraining model, or
  Mixup / CutMix with a pretraining objective.
  """
  run_mode(config)
  objective = registry.objective_of(model)
  model = getattr(model, "float_module", model)  # a quantized model (models/quantized.py)
  name = type(model).__name__ if isinstance(model, nn.Module) else "model.name=" + repr(
      model.get("name", "vivit"))
  if config.mode == "pretrain" and objective != "pretrain":
    raise ValueError(f"mode='pretrain' needs a pretraining model (objective 'pretrain', "
                     f"e.g. model.name='videomae'), got {name} (objective {objective!r})")
  if config.mode in ("finetune", "distill") and objective != "classification":
    raise ValueError(f"mode={config.mode!r} needs a classification model (e.g. "
                     f"model.name='vivit'), got {name} (objective {objective!r})")
  if objective == "pretrain" and (config.train.mixup_alpha or config.train.cutmix_alpha):
    raise ValueError("train.mixup_alpha / train.cutmix_alpha apply to classification; "
                     "set them to 0 for a pretraining model")
  return objective


def pixel_normalisation(config) -> Tuple[Optional[tuple], Optional[tuple]]:
  """`(mean, std)` of the input normalisation (`data.mean`, `data.std`); None = raw pixels."""
  data = config.data
  mean = None if data.mean is None else tuple(float(v) for v in data.mean)
  std = None if data.std is None else tuple(float(v) for v in data.std)
  return mean, std


def softmax_cross_entropy(logits, targets):
  """Per-example `-sum(targets * log_softmax(logits))`, float32 `(B,)`."""
  logp = jax.nn.log_softmax(jnp.asarray(logits, jnp.float32), axis=-1)
  return -jnp.sum(targets * logp, axis=-1)


def _weights(batch):
  """`(B,)` float32 example weights from the optional `mask` key."""
  n = batch["video"].shape[0]
  if "mask" in batch:
    return jnp.asarray(batch["mask"], jnp.float32).reshape(n)
  return jnp.ones((n,), jnp.float32)


def _weighted_mean(x, w):
  return jnp.sum(x * w) / jnp.maximum(jnp.sum(w), 1.0)


def draw_mask(model, rng, video_shape):
  """A `(B, N)` token mask for the model's masking config, batch-sharded."""
  grid = embedding.token_grid(video_shape[1:], model.patch_size, model.tubelet_size)
  mask = masking.make_mask(rng, video_shape[0], grid, model.mask_type, model.mask_ratio,
                           model.future_frames)
  return nn.with_logical_constraint(mask, (axes.ACTIVATION_BATCH, None))


def _classification_loss(config, model) -> LossFn:
  tc = config.train

  def loss_fn(params, batch, rng):
    video, labels = batch["video"], batch["label"]
    targets = mixing.one_hot_targets(labels, model.num_classes, float(tc.label_smoothing))
    video, targets, _ = mixing.mix_batch(
        jax.random.fold_in(rng, MIX), video, targets, mixup_alpha=float(tc.mixup_alpha),
        cutmix_alpha=float(tc.cutmix_alpha), mix_prob=float(tc.mix_prob))
    logits = model.apply({"params": params}, video, train=True,
                         rngs={"dropout": jax.random.fold_in(rng, DROPOUT)})
    loss = jnp.mean(softmax_cross_entropy(logits, targets))
    accuracy = jnp.mean((jnp.argmax(logits, -1) == labels).astype(jnp.float32))
    return loss, {"accuracy": accuracy}

  return loss_fn


def _classification_eval(config, model, return_reconstruction: bool) -> Callable:
  del config, return_reconstruction

  def eval_fn(params, batch, rng):
    del rng
    w = _weights(batch)
    logits = model.apply({"params": params}, batch["video"], train=False)
    labels = batch["label"]
    ce = softmax_cross_entropy(logits, jax.nn.one_hot(labels, logits.shape[-1]))
    correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
    return {"loss": _weighted_mean(ce, w), "accuracy": _weighted_mean(correct, w),
            "num_examples": jnp.sum(w), "logits": jnp.asarray(logits, jnp.float32)}

  return eval_fn


def _pretrain_loss(config, model) -> LossFn:
  norm_pix = bool(config.train.norm_pix_loss)
  mean, std = pixel_normalisation(config)

  def loss_fn(params, batch, rng):
    video = batch["video"]
    mask = draw_mask(model, jax.random.fold_in(rng, MASK), video.shape)
    out = model.apply({"params": params}, video, mask, train=True,
                      rngs={"dropout": jax.random.fold_in(rng, DROPOUT)})
    targets = videomae.reconstruction_targets(video, model.patch_size, model.tubelet_size,
                                              norm_pix, mean, std)
    loss = videomae.reconstruction_loss(out["predictions"], targets, out["masked_indices"],
                                        str(config.train.reconstruction_loss))
    return loss, {}

  return loss_fn


def _pretrain_eval(config, model, return_reconstruction: bool) -> Callable:
  norm_pix = bool(config.train.norm_pix_loss)
  mean, std = pixel_normalisation(config)

  def eval_fn(params, batch, rng):
    video = batch["video"]
    w = _weights(batch)
    mask = draw_mask(model, rng, video.shape)
    out = model.apply({"params": params}, video, mask, train=False)
    targets = videomae.reconstruction_targets(video, model.patch_size, model.tubelet_size,
                                              norm_pix, mean, std)
    per_example = videomae.reconstruction_errors(out["predictions"], targets,
                                                 out["masked_indices"],
                                                 str(config.train.reconstruction_loss))
    metrics = {"loss": _weighted_mean(per_example, w), "num_examples": jnp.sum(w)}
    extra = forecast_metrics.eval_metrics(model, video, out, norm_pix, mean, std)
    metrics.update({k: _weighted_mean(v, w) for k, v in extra.items()})
    if return_reconstruction:
      metrics["reconstruction"] = videomae.reconstruct_video(
          video, out["predictions"], out["masked_indices"], model.patch_size,
          model.tubelet_size, norm_pix, mean, std)
      metrics["mask"] = mask
    return metrics

  return eval_fn


# objective -> (loss factory (config, model), eval factory (config, model, return_reconstruction)).
OBJECTIVES: Dict[str, Tuple[Callable[..., LossFn], Callable[..., Any]]] = {
    "classification": (_classification_loss, _classification_eval),
    "pretrain": (_pretrain_loss, _pretrain_eval),
}


def make_loss_fn(config, model) -> LossFn:
  """`loss_fn(params, batch, rng) -> (loss, metrics)` for training (train=True)."""
  objective = check_mode(config, model)
  if objective == "classification" and getattr(model, "class_splits", None):
    return multihead.make_loss_fn(config, model)
  return OBJECTIVES[objective][0](config, model)


def make_eval_fn(config, model, return_reconstruction: bool = False) -> Callable:
  """`eval_fn(params, batch, rng) -> metrics` (train=False), padding-aware.

  Classification: `loss` (cross-entropy, no smoothing), `accuracy`,
  `num_examples` (sum of weights) and per-example `logits (B, C)` float32.
  Pretrain: `loss` (reconstruction MSE over the real examples),
  `num_examples`, the means of `forecast_metrics.eval_metric_names(model)`
  (plain-pixel MSE and its copy-the-mean baseline; forecast PSNR / SSIM and
  baselines for `future` masking), and with `return_reconstruction` the `reconstruction
  (B, T, H, W, C)` (unnormalised pixels) and the token `mask (B, N)` (True =
  hidden) it was drawn with from `rng`.
  """
  objective = check_mode(config, model)
  if objective == "classification" and getattr(model, "class_splits", None):
    return multihead.make_eval_fn(config, model)
  return OBJECTIVES[objective][1](config, model, return_reconstruction)
