"""Pretraining objectives: dual (decoder) masking, l1 / l2 reconstruction losses."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vivit_jax.models import build_model, masking, videomae

GRID = (4, 4, 4)  # (nt, nh, nw) for 8x32x32 video, patch 8, tubelet 2
MAE = dict(name="videomae", hidden_size=32, num_layers=1, num_heads=4, mlp_dim=64,
           patch_size=8, tubelet_size=2, decoder_hidden_size=16, decoder_layers=1,
           decoder_heads=2, decoder_mlp_dim=32, mask_type="random", mask_ratio=0.75)


def test_running_cell_keeps_the_ratio_per_time_index_and_rotates():
  keep = np.asarray(masking.running_cell_keep(GRID, 0.25)).reshape(4, 4, 4)
  np.testing.assert_array_equal(keep.sum((1, 2)), 4)  # a quarter of 16 tokens per time
  for t in range(1, 4):
    assert not (keep[t] & keep[0]).any()  # the kept position moves on
  np.testing.assert_array_equal(keep.sum(0), 1)  # every token decoded once in 4 steps
  half = np.asarray(masking.running_cell_keep(GRID, 0.5)).reshape(4, 4, 4)
  np.testing.assert_array_equal(half.sum((1, 2)), 8)


@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.8])
def test_decoder_indices_are_a_static_sorted_subset_preferring_the_running_cell(ratio):
  mask = masking.make_mask(jax.random.key(3), 6, GRID, "random", 0.75)
  _, hidden = masking.split_indices(mask, 48)
  chosen = np.asarray(jax.jit(lambda h: masking.decoder_indices(h, GRID, ratio))(hidden))
  count = masking.num_decoded_tokens(48, ratio)
  assert chosen.shape == (6, count) and count == round(48 * ratio)
  keep = np.asarray(masking.running_cell_keep(GRID, ratio))
  for row, hid in zip(chosen, np.asarray(hidden)):
    assert np.all(np.diff(row) > 0)
    assert set(row) <= set(hid)
    in_cell = keep[hid].sum()
    assert keep[row].sum() == min(count, in_cell)


def test_decoder_keep_ratio_out_of_range_names_it():
  with pytest.raises(ValueError, match="decoder_keep_ratio"):
    masking.num_decoded_tokens(48, 0.0)


def _model_and_params(**overrides):
  model = build_model(dict(MAE, **overrides))
  video = jax.random.normal(jax.random.key(0), (2, 8, 32, 32, 3))
  mask = masking.make_mask(jax.random.key(1), 2, GRID, "random", 0.75)
  params = model.init(jax.random.key(2), video, mask)["params"]
  return model, params, video, mask


def _loss(model, params, video, mask, train=True):
  out = model.apply({"params": params}, video, mask, train=train,
                    rngs={"dropout": jax.random.key(0)})
  targets = videomae.reconstruction_targets(video, 8, 2, norm_pix_loss=False, pixel_mean=None)
  return videomae.reconstruction_loss(out["predictions"], targets, out["masked_indices"]), out


def test_dual_masking_with_keep_ratio_one_equals_the_plain_decoder():
  plain, params, video, mask = _model_and_params()
  dual = build_model(dict(MAE, decoder_keep_ratio=1.0 - 1e-9))
  plain_loss, plain_out = _loss(plain, params, video, mask)
  dual_loss, dual_out = _loss(dual, params, video, mask)
  np.testing.assert_array_equal(dual_out["masked_indices"], plain_out["masked_indices"])
  np.testing.assert_allclose(float(dual_loss), float(plain_loss), rtol=1e-6)


def test_dual_masking_decodes_a_subset_in_training_and_all_hidden_tokens_in_eval():
  model, params, video, mask = _model_and_params(decoder_keep_ratio=0.5)
  _, out = _loss(model, params, video, mask, train=True)
  assert out["predictions"].shape == (2, 24, 2 * 8 * 8 * 3)
  assert out["hidden_indices"].shape == (2, 48)
  for row, hid in zip(np.asarray(out["masked_indices"]), np.asarray(out["hidden_indices"])):
    assert set(row) < set(hid)
  _, evaluated = _loss(model, params, video, mask, train=False)
  assert evaluated["predictions"].shape == (2, 48, 384)
  np.testing.assert_array_equal(evaluated["masked_indices"], evaluated["hidden_indices"])


def test_dual_masking_loss_covers_only_decoded_hidden_tokens():
  model, params, video, mask = _model_and_params(decoder_keep_ratio=0.5)
  loss, out = _loss(model, params, video, mask)
  decoded = set(np.asarray(out["masked_indices"][0]).tolist())
  skipped = sorted(set(np.asarray(out["hidden_indices"][0]).tolist()) - decoded)
  patches = videomae.patchify(video, 8, 2)

  def perturbed_loss(token):
    changed = patches.at[0, token].add(5.0)
    return float(_loss(model, params, videomae.unpatchify(changed, video.shape[1:], 8, 2),
                       mask)[0])

  # A hidden token the decoder skips: neither seen by the encoder nor a target.
  assert perturbed_loss(skipped[0]) == pytest.approx(float(loss), rel=1e-6)
  assert perturbed_loss(sorted(decoded)[0]) > float(loss) + 0.3


def test_l1_and_l2_reconstruction_errors_match_hand_computed_values():
  targets = jnp.array([[[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]])  # (1, 3 tokens, 2)
  predictions = jnp.array([[[1.0, 1.0], [4.0, 8.0]]])  # for tokens 0 and 2
  indices = jnp.array([[0, 2]])
  # errors: token 0 -> (1, 0), token 2 -> (0, 3)
  np.testing.assert_allclose(videomae.reconstruction_errors(predictions, targets, indices, "l2"),
                             [(1 + 0 + 0 + 9) / 4])
  np.testing.assert_allclose(videomae.reconstruction_errors(predictions, targets, indices, "l1"),
                             [(1 + 0 + 0 + 3) / 4])
  with pytest.raises(ValueError, match="'l1'"):
    videomae.reconstruction_loss(predictions, targets, indices, "huber")


def test_a_tiny_decoder_keep_ratio_still_decodes_one_token():
  assert masking.num_decoded_tokens(3, 0.1) == 1
  assert masking.num_decoded_tokens(40, 0.5) == 20
