"""Pixel-space pretraining metrics against hand-computed values."""

import jax.numpy as jnp
import numpy as np
import pytest

from vivit_jax.models import forecast_metrics, videomae


def test_psnr_and_ssim_match_hand_computed_values():
  truth = jnp.full((1, 2, 16, 16, 3), 0.5)
  forecast = jnp.full((1, 2, 16, 16, 3), 0.6)
  quality = forecast_metrics.frame_quality(forecast, truth)
  # MSE 0.01 -> PSNR 10 log10(1 / 0.01) = 20 dB.
  np.testing.assert_allclose(quality["psnr"], [20.0], rtol=1e-5)
  # Constant images: SSIM = (2 a b + c1) / (a^2 + b^2 + c1), c1 = (0.01)^2.
  c1 = 0.01 ** 2
  np.testing.assert_allclose(quality["ssim"], [(2 * .5 * .6 + c1) / (.25 + .36 + c1)],
                             rtol=1e-4)
  same = forecast_metrics.frame_quality(truth + jnp.linspace(0, .3, 16)[:, None, None], truth +
                                        jnp.linspace(0, .3, 16)[:, None, None])
  np.testing.assert_allclose(same["ssim"], [1.0], rtol=1e-5)


def _future_clip():
  """Raw 0..1 video (1, 4, 8, 8, 3): frames 0-1 at 0.2, frames 2-3 at 0.4 plus
  a left-right ramp of +-0.1 in frame 3."""
  video = np.full((1, 4, 8, 8, 3), 0.2, np.float32)
  video[:, 2:] = 0.4
  video[:, 3] += np.linspace(-0.1, 0.1, 8)[None, :, None]
  return jnp.asarray(video)


def test_forecast_quality_baselines_are_copy_last_and_patch_mean():
  video = _future_clip()
  masked = jnp.arange(4)[None] + 4  # tubelet 2, patch 4: tokens 4..7 are frames 2-3
  truth_patches = videomae.patchify(video, 4, 2)[:, 4:]
  perfect = forecast_metrics.forecast_quality(video, truth_patches, masked, 4, 2, 2,
                                              norm_pix_loss=False, pixel_mean=None,
                                              pixel_std=None)
  assert float(perfect["psnr"][0]) > 100
  # Copy-last: frame 1 (0.2) for frames 2 (0.4) and 3 (0.4 + ramp): hand-computed MSE.
  ramp = np.linspace(-0.1, 0.1, 8)
  mse2, mse3 = 0.04, np.mean((0.2 + ramp) ** 2)
  expected = (10 * np.log10(1 / mse2) + 10 * np.log10(1 / mse3)) / 2
  np.testing.assert_allclose(perfect["copy_last_psnr"], [expected], rtol=1e-4)
  # Patch mean: each 2x4x4 tubelet's mean; frame 2 errs by half the ramp, frame 3 by the other half.
  patches = np.asarray(videomae.patchify(video, 4, 2))[0, 4:].reshape(4, 2, 4, 4, 3)
  means = patches.mean((1, 2, 3), keepdims=True)
  frame_mse = np.square(patches - means).mean((0, 2, 3, 4))  # per frame of the tubelet
  expected = np.mean(10 * np.log10(1 / frame_mse))
  np.testing.assert_allclose(perfect["patch_mean_psnr"], [expected], rtol=1e-4)


def test_hidden_pixel_errors_against_the_mean_baseline():
  video = _future_clip()
  masked = jnp.array([[4, 5]])
  truth = videomae.patchify(video, 4, 2)[:, 4:6]
  off = truth + 0.1
  errors = forecast_metrics.hidden_pixel_errors(video, off, masked, 4, 2, False, None, None)
  np.testing.assert_allclose(errors["pixel_mse"], [0.01], rtol=1e-5)
  per_channel = np.asarray(truth).reshape(1, 2, -1, 3)
  baseline = np.square(per_channel - per_channel.mean(2, keepdims=True)).mean()
  np.testing.assert_allclose(errors["mean_baseline_pixel_mse"], [baseline], rtol=1e-5)
  # Normalised targets: a zero prediction is exactly the mean baseline.
  zero = forecast_metrics.hidden_pixel_errors(video, jnp.zeros_like(truth), masked, 4, 2, True,
                                              None, None)
  np.testing.assert_allclose(zero["pixel_mse"], zero["mean_baseline_pixel_mse"], rtol=1e-5)


def test_forecast_needs_a_visible_frame():
  video = _future_clip()
  with pytest.raises(ValueError, match="hidden_frames must be in"):
    forecast_metrics.forecast_quality(video, jnp.zeros((1, 8, 96)), jnp.arange(8)[None], 4, 2,
                                      4, False, None, None)
