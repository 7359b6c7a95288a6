"""Masked autoencoder (models/videomae.py) contracts on a tiny model: the
tubelet layout, targets and their normalisation, the loss kinds, the
reconstruction, which tokens the encoder sees and the mask-count guards."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vivit_jax.models import masking, videomae

SHAPE = (2, 4, 4, 6, 3)  # (B, T, H, W, C); patch (2, 3), tubelet 2 -> grid (2, 2, 2)
PATCH, TUBELET = (2, 3), 2


def _video(seed=0, shape=SHAPE):
  return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_patchify_orders_tokens_time_height_width_and_pixels_t_ph_pw_c():
  video = _video()
  patches = np.asarray(videomae.patchify(video, PATCH, TUBELET))
  assert patches.shape == (2, 8, 2 * 2 * 3 * 3)
  # token (t=1, h=0, w=1) is index 1*4 + 0*2 + 1 = 5: frames 2-3, rows 0-1, cols 3-5.
  np.testing.assert_array_equal(patches[1, 5], video[1, 2:4, 0:2, 3:6, :].reshape(-1))
  np.testing.assert_array_equal(
      np.asarray(videomae.unpatchify(patches, SHAPE[1:], PATCH, TUBELET)), video)


def test_targets_undo_the_input_normalisation_then_normalise_each_tubelet_channel():
  video = _video()
  mean, std = (0.1, 0.2, 0.3), (2.0, 3.0, 4.0)
  raw = video * np.asarray(std) + np.asarray(mean)
  plain = np.asarray(videomae.reconstruction_targets(video, PATCH, TUBELET, False, mean, std))
  np.testing.assert_allclose(plain, np.asarray(videomae.patchify(raw, PATCH, TUBELET)),
                             rtol=1e-5, atol=1e-5)
  untouched = videomae.reconstruction_targets(video, PATCH, TUBELET, False, None, None)
  np.testing.assert_array_equal(np.asarray(untouched), videomae.patchify(video, PATCH, TUBELET))
  normed = np.asarray(videomae.reconstruction_targets(video, PATCH, TUBELET, True, mean, std))
  x = plain.reshape(2, 8, -1, 3).astype(np.float64)
  ref = (x - x.mean(2, keepdims=True)) / (x.std(2, ddof=1, keepdims=True) + 1e-6)
  np.testing.assert_allclose(normed, ref.reshape(plain.shape), rtol=1e-4, atol=1e-5)
  flat = np.full(SHAPE, 0.5, np.float32)  # a constant tubelet: std 0, eps keeps it finite
  np.testing.assert_array_equal(
      np.asarray(videomae.reconstruction_targets(flat, PATCH, TUBELET, True, None, None)), 0)


def test_reconstruction_errors_cover_only_the_predicted_tokens_per_example():
  targets = jnp.asarray(_video(1, (2, 8, 5)))
  indices = jnp.asarray([[1, 4, 6], [0, 2, 7]])
  predictions = jnp.asarray(_video(2, (2, 3, 5)))
  picked = np.take_along_axis(np.asarray(targets), np.asarray(indices)[..., None], axis=1)
  diff = np.asarray(predictions) - picked
  l2 = np.asarray(videomae.reconstruction_errors(predictions, targets, indices))
  np.testing.assert_allclose(l2, np.mean(diff ** 2, axis=(1, 2)), rtol=1e-5)
  l1 = np.asarray(videomae.reconstruction_errors(predictions, targets, indices, "l1"))
  np.testing.assert_allclose(l1, np.mean(np.abs(diff), axis=(1, 2)), rtol=1e-5)
  np.testing.assert_allclose(videomae.reconstruction_loss(predictions, targets, indices, "l1"),
                             l1.mean(), rtol=1e-5)
  with pytest.raises(ValueError, match="reconstruction loss must be one of"):
    videomae.reconstruction_errors(predictions, targets, indices, "huber")


@pytest.mark.parametrize("norm_pix", [False, True])
def test_reconstruct_video_puts_true_predictions_back_exactly(norm_pix):
  video = _video(3)
  mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
  indices = jnp.asarray([[0, 3, 5], [2, 6, 7]])
  targets = videomae.reconstruction_targets(video, PATCH, TUBELET, norm_pix, mean, std)
  perfect = masking.gather_tokens(targets, indices)
  raw = video * np.asarray(std) + np.asarray(mean)
  out = videomae.reconstruct_video(video, perfect, indices, PATCH, TUBELET, norm_pix, mean, std)
  np.testing.assert_allclose(np.asarray(out), raw, rtol=1e-4, atol=1e-4)
  zeros = videomae.reconstruct_video(video, jnp.zeros_like(perfect), indices, PATCH, TUBELET,
                                     False, mean, std)
  patches = np.asarray(videomae.patchify(np.asarray(zeros), PATCH, TUBELET))
  np.testing.assert_array_equal(patches[0, [0, 3, 5]], 0)
  np.testing.assert_allclose(patches[0, 1], np.asarray(videomae.patchify(raw, PATCH, TUBELET))[0, 1],
                             rtol=1e-6)


def _model(**kwargs):
  return videomae.MaskedVideoAutoencoder(
      hidden_size=8, num_layers=1, num_heads=2, mlp_dim=16, patch_size=PATCH,
      tubelet_size=TUBELET, decoder_hidden_size=6, decoder_layers=1, decoder_heads=2,
      decoder_mlp_dim=12, mask_ratio=0.5, **kwargs)


def _params(model, video, mask, seed=1):
  shapes = nn.unbox(jax.eval_shape(model.init, jax.random.PRNGKey(0), video, mask)["params"])
  rng = np.random.default_rng(seed)
  return jax.tree_util.tree_map(
      lambda a: jnp.asarray(0.5 * rng.standard_normal(a.shape), a.dtype), shapes)


MASK = np.array([[True, False, True, False, False, True, False, True],
                 [False, False, True, True, True, False, True, False]])


def test_the_encoder_sees_only_visible_tubelets_and_the_decoder_predicts_the_hidden_ones():
  model = _model()
  video = _video(4)
  params = _params(model, video, MASK)
  apply = jax.jit(lambda p, v: model.apply({"params": p}, v, MASK))
  out = apply(params, video)
  assert out["predictions"].shape == (2, 4, 2 * 2 * 3 * 3)
  assert out["encoded"].shape == (2, 4, 8)
  np.testing.assert_array_equal(out["masked_indices"], [[0, 2, 5, 7], [2, 3, 4, 6]])
  np.testing.assert_array_equal(out["hidden_indices"], out["masked_indices"])
  np.testing.assert_array_equal(out["visible_indices"], [[1, 3, 4, 6], [0, 1, 5, 7]])
  patches = np.asarray(videomae.patchify(video, PATCH, TUBELET))
  hidden_changed = patches + 5.0 * MASK[..., None]
  other = apply(params, np.asarray(videomae.unpatchify(hidden_changed, SHAPE[1:], PATCH,
                                                        TUBELET)))
  np.testing.assert_allclose(other["encoded"], out["encoded"], atol=1e-5)
  visible_changed = patches + 5.0 * ~MASK[..., None]
  moved = apply(params, np.asarray(videomae.unpatchify(visible_changed, SHAPE[1:], PATCH,
                                                        TUBELET)))
  assert np.abs(np.asarray(moved["encoded"]) - np.asarray(out["encoded"])).max() > 1e-2
  assert np.abs(np.asarray(moved["predictions"]) - np.asarray(out["predictions"])).max() > 1e-2


def test_each_hidden_prediction_keeps_its_own_position_embedding():
  model = _model()
  video = _video(5)
  params = _params(model, video, MASK)
  out = jax.jit(lambda p: model.apply({"params": p}, video, MASK))(params)
  preds = np.asarray(out["predictions"])
  # every hidden token gets the same mask token: only position tells them apart
  assert np.abs(preds[:, 1:] - preds[:, :1]).max() > 1e-3


def test_unequal_mask_counts_fail_and_a_traced_wrong_count_gives_nan():
  model = _model()
  video = _video(6)
  params = _params(model, video, MASK)
  uneven = MASK.copy()
  uneven[0, 1] = True
  with pytest.raises(ValueError, match="same number of tokens, got counts from 4 to 5"):
    model.apply({"params": params}, video, uneven)
  assert model.num_masked(SHAPE) == 4 and model.num_masked(SHAPE, MASK) == 4
  traced = jax.jit(lambda p, m: model.apply({"params": p}, video, m)["predictions"])
  assert np.all(np.isfinite(traced(params, MASK)))
  wrong = np.zeros_like(MASK)
  wrong[:, :3] = True
  assert np.all(np.isnan(traced(params, wrong)))


def test_dummy_inputs_are_one_zero_clip_and_a_mask_of_the_configured_count():
  model = _model(mask_type="random")
  video, mask = videomae.dummy_inputs(model, SHAPE[1:], jax.random.PRNGKey(0))
  assert video.shape == (1,) + SHAPE[1:] and not np.any(np.asarray(video))
  assert mask.shape == (1, 8) and int(np.asarray(mask).sum()) == 4


def test_defaults_are_the_published_videomae_base_architecture():
  m = videomae.MaskedVideoAutoencoder()
  assert (m.hidden_size, m.num_layers, m.num_heads, m.mlp_dim) == (768, 12, 12, 3072)
  assert (m.decoder_hidden_size, m.decoder_layers, m.decoder_heads,
          m.decoder_mlp_dim) == (384, 4, 6, 1536)
  assert (m.patch_size, m.tubelet_size, m.mask_type, m.mask_ratio) == (16, 2, "tube", 0.9)
