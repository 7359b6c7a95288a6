"""Mixup / CutMix (train/mixing.py) distributions: the Beta draw behind lam,
the CutMix box size, the batch mixing probability and the kind chosen."""

import jax
import jax.numpy as jnp
import numpy as np

from vivit_jax.train import mixing

VIDEO = jnp.asarray(np.random.default_rng(0).standard_normal((2, 1, 32, 32, 1)), jnp.float32)
TARGETS = jax.nn.one_hot(jnp.array([0, 1]), 2)
KEYS = jax.random.split(jax.random.PRNGKey(0), 400)


def _lams(**kwargs):
  fn = jax.jit(jax.vmap(lambda k: mixing.mix_batch(k, VIDEO, TARGETS, **kwargs)))
  video, _, lam = fn(KEYS)
  return np.asarray(video), np.asarray(lam)


def _extreme(lam):
  return np.mean((lam < 0.1) | (lam > 0.9))


def test_lam_follows_the_beta_of_each_alpha():
  # Beta(0.2, 0.2) puts ~2/3 of its mass within 0.1 of 0 or 1; Beta(1, 1) 1/5.
  _, mixup = _lams(mixup_alpha=0.2, cutmix_alpha=0.0)
  assert _extreme(mixup) > 0.5
  _, uniform = _lams(mixup_alpha=1.0, cutmix_alpha=0.0)
  assert 0.1 < _extreme(uniform) < 0.3
  # CutMix's lam is the clipped box's kept fraction, pushed towards 1 by the
  # border: compare the two alphas rather than the Beta's own mass.
  _, cutmix = _lams(mixup_alpha=0.0, cutmix_alpha=0.2)
  _, cutmix_uniform = _lams(mixup_alpha=0.0, cutmix_alpha=1.0)
  assert _extreme(cutmix) > _extreme(cutmix_uniform) + 0.1


def test_cutmix_box_has_the_area_of_the_beta_draw_when_unclipped():
  lam = jnp.float32(0.75)  # box side 32 * sqrt(0.25) = 16
  fn = jax.jit(jax.vmap(lambda k: mixing._box_weights(k, lam, 32, 32)))  # pylint: disable=protected-access
  boxes, kept = (np.asarray(a) for a in fn(KEYS[:100]))
  heights = (boxes == 0).any(axis=2).sum(axis=1)
  widths = (boxes == 0).any(axis=1).sum(axis=1)
  assert heights.max() == 16 and widths.max() == 16
  np.testing.assert_allclose(kept, 1 - heights * widths / 1024.0, rtol=1e-6)
  full = (heights == 16) & (widths == 16)
  assert full.mean() > 0.1
  np.testing.assert_allclose(kept[full], 0.75, rtol=1e-6)
  # the box's centre is uniform over the frame: boxes touch every border
  rows = (boxes == 0).any(axis=2)
  cols = (boxes == 0).any(axis=1)
  assert rows[:, 0].any() and rows[:, -1].any() and cols[:, 0].any() and cols[:, -1].any()


def test_mix_prob_is_the_chance_a_batch_is_mixed():
  _, lam = _lams(mixup_alpha=1.0, cutmix_alpha=0.0, mix_prob=0.3)
  assert 0.22 < np.mean(lam != 1.0) < 0.38


def test_both_alphas_pick_cutmix_or_mixup_with_equal_odds():
  video, lam = _lams(mixup_alpha=1.0, cutmix_alpha=1.0)
  # a CutMix pixel is one of the two clips' pixels exactly; a Mixup pixel is neither
  own, other = np.asarray(VIDEO[0]), np.asarray(VIDEO[1])
  pasted = np.all((video[:, 0] == own) | (video[:, 0] == other), axis=(1, 2, 3, 4))
  assert 0.4 < pasted.mean() < 0.6
  assert np.all(lam[~pasted] > 0) and np.all(lam[~pasted] < 1)
