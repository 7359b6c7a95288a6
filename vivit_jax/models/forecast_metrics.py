"""Pixel-space quality of a masked autoencoder's predictions, with baselines.

All functions take the model's normalised input `video (B, T, H, W, C)`,
its `predictions (B, M, t*ph*pw*C)` at `masked_indices (B, M)` and the
target settings the loss used, map everything back to raw pixels (0..1 for
inputs normalised from 0..1 by `pixel_mean` / `pixel_std`) and return
per-example float32 `(B,)` arrays, so callers can weight out padding.

  hidden_pixel_errors   plain-pixel MSE over the predicted tubelets, and the
                        same for "copy the mean" (each hidden tubelet
                        predicted by its own true per-channel mean: what a
                        normalised-pixel prediction of 0 gives).
  forecast_quality      for `future` masking, the hidden last frames: PSNR
                        [dB] and SSIM (dm-pix, frames clipped to [0, 1],
                        averaged over frames) of the forecast, of copying
                        the last visible frame, and of the per-patch mean.

dm-pix (the `data` extra) is imported only when `frame_quality` runs, so
this module, and the train steps that import it, load without it (the GPU
image has no dm-pix).

With normalised-pixel targets a prediction is mapped back with the true
tubelet's mean and std (as VideoMAE's visualisation does), so it borrows
those two statistics from the truth: compare it with the per-patch-mean
baseline. With raw-pixel targets (`norm_pix_loss=False`) nothing is
borrowed, and copy-last-frame is the baseline to beat.
"""

from typing import Dict, Optional, Sequence

import jax.numpy as jnp

from vivit_jax.models import masking, videomae

FORECAST_KEYS = ("psnr", "ssim", "copy_last_psnr", "copy_last_ssim", "patch_mean_psnr",
                 "patch_mean_ssim")
PIXEL_KEYS = ("pixel_mse", "mean_baseline_pixel_mse")


def raw_pixels(video, pixel_mean: Optional[Sequence[float]], pixel_std):
  """Undoes the input normalisation: `(B, T, H, W, C)` float32."""
  video = jnp.asarray(video, jnp.float32)
  if pixel_mean is None:
    return video
  return video * jnp.asarray(pixel_std, jnp.float32) + jnp.asarray(pixel_mean, jnp.float32)


def hidden_pixel_errors(video, predictions, masked_indices, patch_size, tubelet_size,
                        norm_pix_loss: bool, pixel_mean, pixel_std) -> Dict[str, jnp.ndarray]:
  """`{"pixel_mse", "mean_baseline_pixel_mse"}`, each `(B,)` [raw pixel units^2]."""
  raw = raw_pixels(video, pixel_mean, pixel_std)
  reconstructed = videomae.reconstruct_video(video, predictions, masked_indices, patch_size,
                                             tubelet_size, norm_pix_loss, pixel_mean,
                                             pixel_std)
  channels = raw.shape[-1]
  truth = masking.gather_tokens(videomae.patchify(raw, patch_size, tubelet_size),
                                masked_indices)
  guess = masking.gather_tokens(videomae.patchify(reconstructed, patch_size, tubelet_size),
                                masked_indices)
  per_channel = truth.reshape(truth.shape[:2] + (-1, channels))
  mean_error = per_channel - jnp.mean(per_channel, axis=2, keepdims=True)
  return {"pixel_mse": jnp.mean(jnp.square(guess - truth), axis=(1, 2)),
          "mean_baseline_pixel_mse": jnp.mean(jnp.square(mean_error), axis=(1, 2, 3))}


def frame_quality(forecast, truth) -> Dict[str, jnp.ndarray]:
  """PSNR [dB] and SSIM of `(B, K, H, W, C)` frames in [0, 1], means over K: `(B,)`."""
  import dm_pix  # pylint: disable=import-outside-toplevel  (only future-masking evals need it)
  forecast = jnp.clip(jnp.asarray(forecast, jnp.float32), 0.0, 1.0)
  truth = jnp.clip(jnp.asarray(truth, jnp.float32), 0.0, 1.0)
  b, k = truth.shape[:2]
  forecast, truth = (x.reshape((b * k,) + x.shape[2:]) for x in (forecast, truth))
  psnr = dm_pix.psnr(forecast, truth).reshape(b, k)
  size = min(11, truth.shape[-3], truth.shape[-2])
  ssim = dm_pix.ssim(forecast, truth, max_val=1.0, filter_size=size).reshape(b, k)
  return {"psnr": jnp.mean(psnr, axis=1), "ssim": jnp.mean(ssim, axis=1)}


def forecast_quality(video, predictions, masked_indices, patch_size, tubelet_size,
                     hidden_frames: int, norm_pix_loss: bool, pixel_mean,
                     pixel_std) -> Dict[str, jnp.ndarray]:
  """Quality of the last `hidden_frames` frames (`FORECAST_KEYS`, each `(B,)`).

  `masked_indices` must cover exactly those frames (`future` masking with
  `future_frames * tubelet_size == hidden_frames`).
  """
  raw = raw_pixels(video, pixel_mean, pixel_std)
  t = raw.shape[1]
  if not 0 < hidden_frames < t:
    raise ValueError(f"hidden_frames must be in [1, {t - 1}], got {hidden_frames}")
  truth = raw[:, t - hidden_frames:]
  forecast = videomae.reconstruct_video(video, predictions, masked_indices, patch_size,
                                        tubelet_size, norm_pix_loss, pixel_mean, pixel_std)
  # Zero normalised predictions = every hidden tubelet's own true mean.
  patch_mean = videomae.reconstruct_video(video, jnp.zeros_like(predictions), masked_indices,
                                          patch_size, tubelet_size, True, pixel_mean,
                                          pixel_std)
  copy_last = jnp.broadcast_to(raw[:, t - hidden_frames - 1:t - hidden_frames], truth.shape)
  out = {}
  for prefix, frames in (("", forecast[:, t - hidden_frames:]), ("copy_last_", copy_last),
                         ("patch_mean_", patch_mean[:, t - hidden_frames:])):
    for name, value in frame_quality(frames, truth).items():
      out[prefix + name] = value
  return out


def eval_metric_names(model, mask_type: Optional[str] = None) -> tuple:
  """Names of the extra per-example metrics the pretraining eval reports."""
  mask_type = mask_type or model.mask_type
  return PIXEL_KEYS + (FORECAST_KEYS if mask_type == "future" else ())


def eval_metrics(model, video, out, norm_pix_loss: bool, pixel_mean,
                 pixel_std) -> Dict[str, jnp.ndarray]:
  """All of `eval_metric_names(model)` for one eval batch, each `(B,)`.

  `out` is the model's output dict at `train=False` (every hidden token
  decoded).
  """
  metrics = hidden_pixel_errors(video, out["predictions"], out["masked_indices"],
                                model.patch_size, model.tubelet_size, norm_pix_loss,
                                pixel_mean, pixel_std)
  if model.mask_type == "future":
    metrics.update(forecast_quality(
        video, out["predictions"], out["masked_indices"], model.patch_size,
        model.tubelet_size, model.future_frames * model.tubelet_size, norm_pix_loss,
        pixel_mean, pixel_std))
  return metrics
