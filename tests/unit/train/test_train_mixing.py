"""Label smoothing, Mixup and CutMix on video batches."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vivit_jax.train import mixing

# One compilation serves every test: alphas are static, mix_prob is traced.
mix_batch = jax.jit(mixing.mix_batch, static_argnames=("mixup_alpha", "cutmix_alpha"))


def _batch(b=4, t=3, h=8, w=12, c=2, k=5):
  rng = np.random.RandomState(0)
  video = jnp.asarray(rng.randn(b, t, h, w, c).astype(np.float32))
  labels = jnp.arange(b) % k
  return video, mixing.one_hot_targets(labels, k, 0.1)


@pytest.fixture(scope="module")
def mixed():
  """`(video, targets, [(out, out_targets, lam) per seed])` with both kinds on."""
  video, targets = _batch()
  outs = [mix_batch(jax.random.key(seed), video, targets, mixup_alpha=0.8,
                    cutmix_alpha=1.0, mix_prob=1.0) for seed in range(12)]
  return video, targets, outs


def test_label_smoothing_targets():
  targets = mixing.one_hot_targets(jnp.array([2, 0]), 4, 0.2)
  np.testing.assert_allclose(targets.sum(-1), 1.0, rtol=1e-6)
  np.testing.assert_allclose(targets[0], [0.05, 0.05, 0.85, 0.05], rtol=1e-6)
  np.testing.assert_array_equal(mixing.one_hot_targets(jnp.array([1]), 3), [[0, 1, 0]])


def test_no_mixing_is_identity():
  video, targets = _batch()
  out, out_targets, lam = mixing.mix_batch(jax.random.key(0), video, targets,
                                           mixup_alpha=0.0, cutmix_alpha=0.0)
  assert out is video and out_targets is targets and float(lam) == 1.0
  out, out_targets, lam = mix_batch(jax.random.key(0), video, targets, mixup_alpha=0.8,
                                    cutmix_alpha=1.0, mix_prob=0.0)
  np.testing.assert_array_equal(out, video)
  np.testing.assert_array_equal(out_targets, targets)
  assert float(lam) == 1.0


def test_targets_mix_with_the_same_lam(mixed):
  video, targets, outs = mixed
  for out, out_targets, lam in outs:
    assert out.dtype == video.dtype and out.shape == video.shape
    np.testing.assert_allclose(out_targets,
                               lam * targets + (1 - lam) * jnp.roll(targets, 1, axis=0),
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(out_targets.sum(-1), 1.0, rtol=1e-5)


def test_mixup_and_cutmix_each_do_their_kind(mixed):
  video, _, outs = mixed
  other = np.asarray(jnp.roll(video, 1, axis=0))
  video = np.asarray(video)
  kinds = set()
  for out, _, lam in outs:
    out, lam = np.asarray(out), float(lam)
    from_self = np.all(out == video, axis=-1)  # (B, T, H, W)
    from_other = np.all(out == other, axis=-1)
    if np.all(from_self | from_other):  # CutMix (or a box clipped to nothing)
      pasted = ~from_self[0, 0]
      for b in range(video.shape[0]):
        for t in range(video.shape[1]):
          np.testing.assert_array_equal(~from_self[b, t], pasted)  # same box everywhere
      if pasted.any():
        rows, cols = np.nonzero(pasted)
        assert pasted[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()
        kinds.add("cutmix")
      np.testing.assert_allclose(lam, 1.0 - pasted.mean(), rtol=1e-6)
    else:
      assert 0.0 < lam < 1.0
      np.testing.assert_allclose(out, lam * video + (1 - lam) * other, rtol=1e-5, atol=1e-5)
      kinds.add("mixup")
  assert kinds == {"mixup", "cutmix"}
