"""Losses of the two training modes, as pure functions of (params, batch, rng).

  classification ("train" / "finetune"): ViViT logits, softmax cross-entropy
      against label-smoothed, Mixup/CutMix-mixed targets.
  pretrain: VideoMAE; a token mask is drawn per step, the loss is the mean
      squared error of the hidden tubelets' (normalised) pixels.

Config keys read: `train.{label_smoothing, mixup_alpha, cutmix_alpha,
mix_prob, norm_pix_loss, reconstruction_loss, pixel_mean,
pixel_std}`; the mask comes from the
model's `mask_type`, `mask_ratio`, `future_frames` (its config).

PRNG streams: the step's key is folded with `DROPOUT`, `MIX` and `MASK` so
each use has its own stream.

Batch: `video (B, T, H, W, C)` normalised float, `label (B,)` int32; eval
batches may add `mask (B,)` (1 = real example, 0 = padding).
"""

from typing import Callable, Dict, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from vivit_jax.models import embedding, forecast_metrics, masking, videomae
from vivit_jax.models.videomae import MaskedVideoAutoencoder
from vivit_jax.models.vivit import ViViT
from vivit_jax.train import mixing

CLASSIFICATION_MODES = ("train", "finetune")
MODES = CLASSIFICATION_MODES + ("pretrain",)
DROPOUT, MIX, MASK = 0, 1, 2
EVAL_MASK_SEED = 12345  # pretrain eval: one fixed token mask (given the state's key)

LossFn = Callable[..., Tuple[jax.Array, Dict[str, jax.Array]]]


def check_mode(config, model) -> str:
  mode = config.mode
  if mode not in MODES:
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
  want = MaskedVideoAutoencoder if mode == "pretrain" else ViViT
  if not isinstance(model, want):
    raise ValueError(f"mode={mode!r} needs a {want.__name__} model "
                     f"(model.name), got {type(model).__name__}")
  if mode == "pretrain" and (config.train.mixup_alpha or config.train.cutmix_alpha):
    raise ValueError("train.mixup_alpha / train.cutmix_alpha apply to classification; "
                     "set them to 0 for mode='pretrain'")
  return mode


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


def draw_mask(model: MaskedVideoAutoencoder, rng, video_shape):
  """A `(B, N)` token mask for the model's masking config, batch-sharded."""
  grid = embedding.token_grid(video_shape[1:], model.patch_size, model.tubelet_size)
  mask = masking.make_mask(rng, video_shape[0], grid, model.mask_type, model.mask_ratio,
                           model.future_frames)
  return nn.with_logical_constraint(mask, ("activation_batch", None))


def make_loss_fn(config, model) -> LossFn:
  """`loss_fn(params, batch, rng) -> (loss, metrics)` for training (train=True)."""
  mode = check_mode(config, model)
  tc = config.train
  pixel_mean = tuple(tc.pixel_mean) if tc.pixel_mean is not None else None
  pixel_std = tuple(tc.pixel_std) if tc.pixel_std is not None else None

  def classification_loss(params, batch, rng):
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

  def pretrain_loss(params, batch, rng):
    video = batch["video"]
    mask = draw_mask(model, jax.random.fold_in(rng, MASK), video.shape)
    out = model.apply({"params": params}, video, mask, train=True,
                      rngs={"dropout": jax.random.fold_in(rng, DROPOUT)})
    targets = videomae.reconstruction_targets(video, model.patch_size, model.tubelet_size,
                                              bool(tc.norm_pix_loss), pixel_mean, pixel_std)
    loss = videomae.reconstruction_loss(out["predictions"], targets, out["masked_indices"],
                                        str(tc.reconstruction_loss))
    return loss, {}

  return pretrain_loss if mode == "pretrain" else classification_loss


def make_eval_fn(config, model, return_reconstruction: bool = False) -> Callable:
  """`eval_fn(params, batch, rng) -> metrics` (train=False), padding-aware.

  Classification: `loss` (cross-entropy, no smoothing), `accuracy`,
  `num_examples` (sum of weights) and per-example `logits (B, C)` float32.
  Pretrain: `loss` (reconstruction MSE over the real examples),
  `num_examples`, the means of `forecast_metrics.eval_metric_names(model)`
  (plain-pixel MSE and its copy-the-mean baseline; forecast PSNR / SSIM and
  baselines for `future` masking), and `reconstruction (B, T, H, W, C)` (unnormalised pixels)
  when `return_reconstruction`; the mask is drawn from `rng`.
  """
  mode = check_mode(config, model)
  tc = config.train
  pixel_mean = tuple(tc.pixel_mean) if tc.pixel_mean is not None else None
  pixel_std = tuple(tc.pixel_std) if tc.pixel_std is not None else None

  def classification_eval(params, batch, rng):
    del rng
    w = _weights(batch)
    logits = model.apply({"params": params}, batch["video"], train=False)
    labels = batch["label"]
    ce = softmax_cross_entropy(logits, jax.nn.one_hot(labels, logits.shape[-1]))
    correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
    return {"loss": _weighted_mean(ce, w), "accuracy": _weighted_mean(correct, w),
            "num_examples": jnp.sum(w), "logits": logits}

  def pretrain_eval(params, batch, rng):
    video = batch["video"]
    w = _weights(batch)
    mask = draw_mask(model, rng, video.shape)
    out = model.apply({"params": params}, video, mask, train=False)
    targets = videomae.reconstruction_targets(video, model.patch_size, model.tubelet_size,
                                              bool(tc.norm_pix_loss), pixel_mean, pixel_std)
    per_example = videomae.reconstruction_errors(out["predictions"], targets,
                                                 out["masked_indices"],
                                                 str(tc.reconstruction_loss))
    metrics = {"loss": _weighted_mean(per_example, w), "num_examples": jnp.sum(w)}
    extra = forecast_metrics.eval_metrics(model, video, out, bool(tc.norm_pix_loss),
                                          pixel_mean, pixel_std)
    metrics.update({k: _weighted_mean(v, w) for k, v in extra.items()})
    if return_reconstruction:
      metrics["reconstruction"] = videomae.reconstruct_video(
          video, out["predictions"], out["masked_indices"], model.patch_size,
          model.tubelet_size, bool(tc.norm_pix_loss), pixel_mean, pixel_std)
    return metrics

  return pretrain_eval if mode == "pretrain" else classification_eval
