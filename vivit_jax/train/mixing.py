"""Mixup and CutMix for video batches, on device inside the train step.

One mixing coefficient per batch (timm's "batch" mode). With probability
`mix_prob` the batch is mixed, else left as is; when both alphas are positive
CutMix and Mixup are picked with equal odds. Each example is mixed with its
neighbour `roll(batch, 1)`.

  Mixup   video = lam * video + (1 - lam) * video[perm], lam ~ Beta(a, a).
  CutMix  a box of area (1 - lam) of H x W, the same box in every frame, is
          pasted from video[perm]; lam is then recomputed from the clipped
          box's area. Targets are mixed with the same lam.

All branches are selected with `jnp.where`, so shapes are static and the
function is jit-friendly.
"""

from typing import Tuple

import jax
import jax.numpy as jnp


def one_hot_targets(labels, num_classes: int, label_smoothing: float = 0.0):
  """`(B,)` int labels -> `(B, num_classes)` float32 smoothed one-hot targets.

  The true class gets `1 - s + s / C`, every other class `s / C`.
  """
  one_hot = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
  return one_hot * (1.0 - label_smoothing) + label_smoothing / num_classes


def _box_weights(rng, lam, height: int, width: int):
  """CutMix pixel weights `(H, W)` (0 inside the box, 1 outside) and the kept fraction."""
  ratio = jnp.sqrt(1.0 - lam)
  cut_h = (height * ratio).astype(jnp.int32)
  cut_w = (width * ratio).astype(jnp.int32)
  cy_rng, cx_rng = jax.random.split(rng)
  cy = jax.random.randint(cy_rng, (), 0, height)
  cx = jax.random.randint(cx_rng, (), 0, width)
  y0, y1 = jnp.clip(cy - cut_h // 2, 0, height), jnp.clip(cy + cut_h // 2, 0, height)
  x0, x1 = jnp.clip(cx - cut_w // 2, 0, width), jnp.clip(cx + cut_w // 2, 0, width)
  ys = jnp.arange(height)[:, None]
  xs = jnp.arange(width)[None, :]
  inside = (ys >= y0) & (ys < y1) & (xs >= x0) & (xs < x1)
  kept = 1.0 - ((y1 - y0) * (x1 - x0)).astype(jnp.float32) / (height * width)
  return jnp.where(inside, 0.0, 1.0), kept


def mix_batch(rng, video, targets, *, mixup_alpha: float, cutmix_alpha: float,
              mix_prob: float = 1.0) -> Tuple[jax.Array, jax.Array, jax.Array]:
  """Mixes a batch; see the module docstring.

  Args:
    rng: PRNG key for this batch's mixing.
    video: `(B, T, H, W, C)`.
    targets: `(B, K)` float32 soft targets.
    mixup_alpha, cutmix_alpha: Beta parameters; 0 disables that kind.
    mix_prob: probability of mixing this batch at all.

  Returns:
    `(video, targets, lam)`: mixed video (input dtype), mixed targets and the
    weight of the original examples (1.0 when not mixed).
  """
  if not mixup_alpha and not cutmix_alpha:
    return video, targets, jnp.ones((), jnp.float32)
  apply_rng, choose_rng, mixup_rng, cutmix_rng, box_rng = jax.random.split(rng, 5)
  apply = jax.random.uniform(apply_rng) < mix_prob
  if mixup_alpha and cutmix_alpha:
    use_cutmix = jax.random.uniform(choose_rng) < 0.5
  else:
    use_cutmix = jnp.asarray(bool(cutmix_alpha))
  lam_mixup = jax.random.beta(mixup_rng, mixup_alpha or 1.0, mixup_alpha or 1.0)
  lam_cutmix = jax.random.beta(cutmix_rng, cutmix_alpha or 1.0, cutmix_alpha or 1.0)
  height, width = video.shape[2], video.shape[3]
  box, kept = _box_weights(box_rng, lam_cutmix, height, width)

  weight = jnp.where(use_cutmix, box, lam_mixup)  # (H, W), broadcast
  lam = jnp.where(use_cutmix, kept, lam_mixup)
  weight = jnp.where(apply, weight, 1.0)
  lam = jnp.where(apply, lam, 1.0).astype(jnp.float32)

  w = weight[None, None, :, :, None].astype(jnp.float32)
  other = jnp.roll(video, 1, axis=0)
  mixed = (w * video.astype(jnp.float32) + (1.0 - w) * other.astype(jnp.float32))
  mixed_targets = lam * targets + (1.0 - lam) * jnp.roll(targets, 1, axis=0)
  return mixed.astype(video.dtype), mixed_targets, lam
