"""Masked video autoencoder: masks, targets, loss, reconstruction, transfer."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vivit_jax import checkpoints
from vivit_jax.common.constants import IMAGENET_MEAN, IMAGENET_STD
from vivit_jax.models import build_model, masking, transfer, videomae
from vivit_jax.models import embedding as emb

GRID = (4, 4, 4)  # (nt, nh, nw) for 8x32x32 video, patch 8, tubelet 2
MAE = dict(name="videomae", hidden_size=32, num_layers=2, num_heads=4, mlp_dim=64,
           patch_size=8, tubelet_size=2, decoder_hidden_size=16, decoder_layers=1,
           decoder_heads=2, decoder_mlp_dim=32, mask_ratio=0.75)


@pytest.mark.parametrize("mask_type,ratio,expected", [("tube", 0.9, 4 * 14), ("tube", 0.75, 48),
                                                      ("random", 0.9, 57), ("future", 0.9, 16)])
def test_masks_hide_exactly_the_static_count(mask_type, ratio, expected):
  mask = masking.make_mask(jax.random.key(0), 8, GRID, mask_type, ratio)
  chex.assert_shape(mask, (8, 64))
  assert masking.num_masked_tokens(GRID, mask_type, ratio) == expected
  np.testing.assert_array_equal(np.asarray(mask).sum(1), expected)


def test_tube_masks_are_equal_across_time_and_differ_across_examples():
  mask = np.asarray(masking.make_mask(jax.random.key(0), 8, GRID, "tube", 0.75)).reshape(8, 4, 16)
  for t in range(1, 4):
    np.testing.assert_array_equal(mask[:, t], mask[:, 0])
  assert len({m.tobytes() for m in mask[:, 0]}) > 1


def test_random_masks_vary_over_time_and_future_masks_hide_the_end():
  mask = np.asarray(masking.make_mask(jax.random.key(0), 4, GRID, "random", 0.5)).reshape(4, 4, 16)
  assert not all((mask[:, t] == mask[:, 0]).all() for t in range(4))
  future = np.asarray(masking.make_mask(jax.random.key(0), 2, GRID, "future",
                                        future_frames=2)).reshape(2, 4, 16)
  assert future[:, 2:].all() and not future[:, :2].any()


def test_mask_defaults_and_a_ratio_that_hides_nothing():
  mask = masking.make_mask(jax.random.key(0), 2, GRID)  # documented: tube, 0.9
  np.testing.assert_array_equal(np.asarray(mask).sum(1), masking.num_masked_tokens(
      GRID, "tube", 0.9))
  for ratio, count in ((0.01, 0), (1.0, 64)):
    with pytest.raises(ValueError, match=f"mask_ratio={ratio} hides {count} of 64 tokens"):
      masking.num_masked_tokens(GRID, "random", ratio)
  with pytest.raises(ValueError, match=r"future_frames must be in \[1, 3\] for 4"):
    masking.num_masked_tokens(GRID, "future", future_frames=4)


def test_masks_jit_with_a_static_shape():
  fn = jax.jit(lambda k: masking.make_mask(k, 2, GRID, "tube", 0.9))
  assert fn(jax.random.key(1)).shape == (2, 64)


def test_split_indices_are_sorted_and_partition_the_tokens():
  mask = masking.make_mask(jax.random.key(0), 3, GRID, "random", 0.75)
  visible, hidden = masking.split_indices(mask, 48)
  for b in range(3):
    assert np.all(np.diff(np.asarray(visible[b])) > 0) and np.all(np.diff(np.asarray(hidden[b])) > 0)
    np.testing.assert_array_equal(np.sort(np.concatenate([visible[b], hidden[b]])), np.arange(64))
    assert np.asarray(mask[b])[np.asarray(hidden[b])].all()


def test_patchify_roundtrip_and_layout():
  video = jax.random.normal(jax.random.key(0), (2, 4, 16, 24, 3))
  patches = videomae.patchify(video, (8, 4), 2)
  chex.assert_shape(patches, (2, 2 * 2 * 6, 2 * 8 * 4 * 3))
  # Token (t=1, h=0, w=2) holds frames 2-3, rows 0-7, cols 8-11, in (t, ph, pw, C) order.
  np.testing.assert_array_equal(patches[0, 1 * 12 + 0 * 6 + 2].reshape(2, 8, 4, 3),
                                video[0, 2:4, 0:8, 8:12])
  np.testing.assert_array_equal(videomae.unpatchify(patches, (4, 16, 24, 3), (8, 4), 2), video)


def test_norm_pix_targets_are_normalised_per_tubelet():
  video = jax.random.uniform(jax.random.key(0), (1, 4, 16, 16, 3))
  targets = videomae.reconstruction_targets(video, 8, 2, norm_pix_loss=True, pixel_mean=None)
  per_channel = targets.reshape(1, -1, 2 * 8 * 8, 3)
  np.testing.assert_allclose(per_channel.mean(2), 0.0, atol=1e-5)
  np.testing.assert_allclose(per_channel.std(2, ddof=1), 1.0, atol=1e-3)


def _setup(mask_ratio=0.75):
  model = build_model(dict(MAE, mask_ratio=mask_ratio))
  video = jax.random.normal(jax.random.key(0), (2, 8, 32, 32, 3))
  mask = masking.make_mask(jax.random.key(1), 2, GRID, "tube", mask_ratio)
  params = nn.unbox(model.init(jax.random.key(0), video, mask)["params"])
  return model, video, mask, params


def test_encoder_sees_only_visible_tokens_and_loss_counts_only_hidden_ones():
  model, video, mask, params = _setup()
  apply = jax.jit(lambda v, m: model.apply({"params": params}, v, m))
  out = apply(video, mask)
  chex.assert_shape(out["encoded"], (2, 16, 32))
  chex.assert_shape(out["predictions"], (2, 48, 2 * 8 * 8 * 3))
  targets = videomae.reconstruction_targets(video, 8, 2)
  loss = videomae.reconstruction_loss(out["predictions"], targets, out["masked_indices"])
  # Changing the targets of visible tokens does not change the loss.
  visible_changed = targets.at[jnp.arange(2)[:, None], out["visible_indices"]].add(100.0)
  np.testing.assert_allclose(
      videomae.reconstruction_loss(out["predictions"], visible_changed, out["masked_indices"]),
      loss, rtol=1e-6)
  # Changing the pixels of every hidden tubelet does not change what the
  # encoder saw; changing one visible tubelet does.
  def perturbed(token_mask):
    delta = jnp.asarray(token_mask, jnp.float32)[..., None] * jnp.ones((1, 1, 2 * 8 * 8 * 3))
    return video + 5.0 * videomae.unpatchify(delta, video.shape[1:], 8, 2)

  hidden_moved = apply(perturbed(mask), mask)
  moved_tokens = np.abs(np.asarray(videomae.patchify(perturbed(mask) - video, 8, 2))).max(-1)
  np.testing.assert_array_equal(moved_tokens > 1.0, np.asarray(mask))
  np.testing.assert_allclose(hidden_moved["encoded"], out["encoded"], rtol=1e-5, atol=1e-5)
  one_visible = np.zeros(mask.shape, bool)
  one_visible[0, int(out["visible_indices"][0, 0])] = True
  visible_moved = apply(perturbed(one_visible), mask)
  change = np.abs(np.asarray(visible_moved["encoded"] - out["encoded"])).max(axis=(1, 2))
  assert change[0] > 1e-3 and change[1] == 0.0


def test_jit_uses_the_configured_count_and_poisons_a_mismatched_mask():
  model, video, mask, params = _setup(0.75)
  apply = jax.jit(lambda p, v, m: model.apply({"params": p}, v, m))
  out = apply(params, video, mask)
  assert np.isfinite(np.asarray(out["predictions"])).all()
  wrong = masking.make_mask(jax.random.key(1), 2, GRID, "tube", 0.5)
  assert np.isnan(np.asarray(apply(params, video, wrong)["predictions"])).all()
  uneven = np.asarray(mask).copy()
  uneven[0, np.flatnonzero(~uneven[0])[0]] = True
  with pytest.raises(ValueError, match="same number"):
    model.apply({"params": params}, video, uneven)


def test_reconstruction_from_perfect_predictions_is_the_video():
  model, video, mask, params = _setup()
  out = model.apply({"params": params}, video, mask)
  for norm_pix in (True, False):
    targets = videomae.reconstruction_targets(video, 8, 2, norm_pix_loss=norm_pix)
    perfect = masking.gather_tokens(targets, out["masked_indices"])
    frames = videomae.reconstruct_video(video, perfect, out["masked_indices"], 8, 2,
                                        norm_pix_loss=norm_pix)
    unnormalised = video * jnp.asarray(IMAGENET_STD) + jnp.asarray(IMAGENET_MEAN)
    np.testing.assert_allclose(frames, unnormalised, atol=1e-4)
  blank = videomae.reconstruct_video(video, jnp.zeros_like(perfect), out["masked_indices"], 8, 2,
                                     norm_pix_loss=False)
  assert not np.allclose(blank, unnormalised, atol=1e-2)


def test_pretrained_encoder_loads_into_the_classifier():
  model, video, mask, params = _setup()
  classifier = build_model(dict(name="vivit", hidden_size=32, num_layers=2, num_heads=4,
                                mlp_dim=64, patch_size=8, tubelet_size=2, classifier="gap",
                                fc_norm=True, pos_embedding="sinusoid", num_classes=3))
  fresh = nn.unbox(classifier.init(jax.random.key(5), video)["params"])
  loaded = transfer.encoder_to_classifier(fresh, params)
  np.testing.assert_array_equal(loaded["encoder"]["block_01"]["mlp"]["fc1"]["kernel"],
                                params["encoder"]["block_01"]["mlp"]["fc1"]["kernel"])
  np.testing.assert_array_equal(loaded["head"]["kernel"], fresh["head"]["kernel"])
  # With nothing hidden, the classifier's tokens are the encoder's output (the
  # fc_norm classifier has no final encoder norm: compare with one that has none).
  no_norm = dict(params, encoder={k: v for k, v in params["encoder"].items() if k != "norm"})
  encoder_only = build_model(dict(MAE, encoder_final_norm=False))
  all_visible = np.zeros((2, 64), bool)
  encoded = encoder_only.apply({"params": no_norm}, video, all_visible)["encoded"]
  _, state = classifier.apply({"params": loaded}, video, mutable=["intermediates"])
  np.testing.assert_allclose(state["intermediates"]["tokens"][0], encoded, atol=1e-5)
  wrong = build_model(dict(name="vivit", hidden_size=48, num_layers=2, num_heads=4, mlp_dim=64,
                           patch_size=8, tubelet_size=2, classifier="gap", fc_norm=True,
                           pos_embedding="sinusoid", num_classes=3))
  wrong_params = nn.unbox(wrong.init(jax.random.key(5), video)["params"])
  with pytest.raises(checkpoints.ParamMismatchError, match="encoder/block_00/mlp/fc1/kernel"):
    transfer.encoder_to_classifier(wrong_params, params)


def test_a_learned_position_table_starts_from_the_encoders_sinusoid_table():
  model, video, mask, params = _setup()
  classifier = build_model(dict(name="vivit", hidden_size=32, num_layers=2, num_heads=4,
                                mlp_dim=64, patch_size=8, tubelet_size=2, classifier="token",
                                pos_embedding="learned", num_classes=3))
  fresh = nn.unbox(classifier.init(jax.random.key(5), video)["params"])
  loaded = transfer.encoder_to_classifier(fresh, params)
  table = np.asarray(loaded["pos_embedding"]["embedding"])
  assert table.shape == (65, 32)
  np.testing.assert_allclose(table[1:], emb.sinusoid_table(64, 32), atol=1e-6)
  np.testing.assert_array_equal(table[0], fresh["pos_embedding"]["embedding"][0])
  # With nothing hidden and the CLS token dropped, the classifier computes
  # exactly the sinusoid encoder's tokens.
  sinusoid = build_model(dict(name="vivit", hidden_size=32, num_layers=2, num_heads=4,
                              mlp_dim=64, patch_size=8, tubelet_size=2, classifier="gap",
                              pos_embedding="sinusoid", num_classes=3))
  gap = nn.unbox(sinusoid.init(jax.random.key(5), video)["params"])
  _, want = sinusoid.apply({"params": transfer.encoder_to_classifier(gap, params)}, video,
                           mutable=["intermediates"])
  learned_gap = build_model(dict(name="vivit", hidden_size=32, num_layers=2, num_heads=4,
                                 mlp_dim=64, patch_size=8, tubelet_size=2, classifier="gap",
                                 pos_embedding="learned", num_classes=3))
  fresh_gap = nn.unbox(learned_gap.init(jax.random.key(6), video)["params"])
  _, got = learned_gap.apply({"params": transfer.encoder_to_classifier(fresh_gap, params)},
                             video, mutable=["intermediates"])
  np.testing.assert_allclose(got["intermediates"]["tokens"][0],
                             want["intermediates"]["tokens"][0], atol=1e-5)


@pytest.mark.parametrize("variant,classifier", [("spatio_temporal", "token"),
                                                ("factorised_encoder", "token"),
                                                ("factorised_self_attention", "gap")])
@pytest.mark.parametrize("method", ["central_frame", "average"])
def test_image_vit_inflates_into_every_variant(variant, classifier, method):
  image_vit = build_model(dict(name="vivit", hidden_size=32, num_layers=2, num_heads=4,
                               mlp_dim=64, patch_size=8, tubelet_size=1, num_classes=0))
  image = jax.random.normal(jax.random.key(0), (1, 1, 16, 16, 3))
  vit_params = nn.unbox(image_vit.init(jax.random.key(0), image)["params"])
  video_model = build_model(dict(name="vivit", variant=variant, classifier=classifier,
                                 hidden_size=32, num_layers=2, num_heads=4, mlp_dim=64,
                                 temporal_layers=1, patch_size=8, tubelet_size=2,
                                 num_classes=3))
  clip = jnp.broadcast_to(jax.random.normal(jax.random.key(1), (1, 1, 32, 32, 3)),
                          (1, 4, 32, 32, 3))
  fresh = nn.unbox(video_model.init(jax.random.key(1), clip)["params"])
  loaded = transfer.inflate_image_vit(fresh, vit_params, (4, 4), method)
  chex.assert_trees_all_equal_shapes(loaded, fresh)
  src_block = vit_params["encoder"]["block_01"]
  dst_block = loaded["encoder"]["block_01"]
  attn = "spatial_attention" if variant == "factorised_self_attention" else "attention"
  np.testing.assert_array_equal(dst_block[attn]["query"]["kernel"],
                                src_block["attention"]["query"]["kernel"])
  assert np.isfinite(np.asarray(video_model.apply({"params": loaded}, clip))).all()


@pytest.mark.parametrize("method", ["central_frame", "average"])
def test_inflated_variants_match_the_image_vit_on_a_static_clip(method):
  """On a clip that repeats one frame, every inflated variant's per-frame
  tokens are the 2D ViT's tokens for that frame (GAP models: no CLS token,
  so Model 1's joint attention over duplicated frames is exact; Model 3's
  fresh temporal attention and time embedding are zeroed)."""
  image_vit = build_model(dict(name="vivit", hidden_size=32, num_layers=2, num_heads=4,
                               mlp_dim=64, patch_size=8, tubelet_size=1, num_classes=0,
                               classifier="gap"))
  frame = jax.random.normal(jax.random.key(1), (1, 1, 32, 32, 3))
  vit_params = nn.unbox(image_vit.init(jax.random.key(0), frame)["params"])
  vit_params = jax.tree_util.tree_map(  # random, so no block is an identity by init
      lambda x: x + 0.3 * jax.random.normal(jax.random.key(x.size), x.shape), vit_params)
  _, state = image_vit.apply({"params": vit_params}, frame, mutable=["intermediates"])
  expected = np.asarray(state["intermediates"]["tokens"][0])  # (1, 16, 32)
  clip = jnp.broadcast_to(frame, (1, 4, 32, 32, 3))
  for variant in ("spatio_temporal", "factorised_encoder", "factorised_self_attention"):
    model = build_model(dict(name="vivit", variant=variant, classifier="gap", hidden_size=32,
                             num_layers=2, num_heads=4, mlp_dim=64, temporal_layers=1,
                             patch_size=8, tubelet_size=2, num_classes=3))
    fresh = nn.unbox(model.init(jax.random.key(1), clip)["params"])
    loaded = transfer.inflate_image_vit(fresh, vit_params, (4, 4), method, num_prefix_tokens=0)
    if variant == "factorised_self_attention":
      loaded["temporal_pos_embedding"] = jax.tree_util.tree_map(
          jnp.zeros_like, loaded["temporal_pos_embedding"])
      for name, block in loaded["encoder"].items():
        if name.startswith("block_"):
          block["temporal_attention"]["out"] = jax.tree_util.tree_map(
              jnp.zeros_like, block["temporal_attention"]["out"])
    _, state = model.apply({"params": loaded}, clip, capture_intermediates=True,
                           mutable=["intermediates"])
    if variant == "factorised_encoder":
      tokens = state["intermediates"]["encoder"]["__call__"][0]  # the spatial encoder
    else:
      tokens = state["intermediates"]["tokens"][0]
    tokens = np.asarray(tokens).reshape(2, 16, 32)
    for t in range(2):
      np.testing.assert_allclose(tokens[t], expected[0], rtol=1e-4, atol=1e-4,
                                 err_msg=f"{variant}, time index {t}")
