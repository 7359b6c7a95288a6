"""`make demo`, until the training job lands: one forward/backward pass.

Builds a small ViViT and a small masked autoencoder, runs a jitted
forward/backward pass on a generated moving-square clip and prints the
losses and gradient norms. This says so plainly: it is not training.
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn

from vivit_jax.models import build_model
from vivit_jax.models import masking, videomae


def moving_square_clip(num_frames=8, size=32, seed=0):
  """`(1, T, H, W, 3)` float32 clip of a square moving right, ImageNet-normalised."""
  rng = np.random.default_rng(seed)
  clip = np.zeros((num_frames, size, size, 3), np.float32)
  y, x0 = rng.integers(4, size - 12, size=2)
  for t in range(num_frames):
    x = (x0 + 2 * t) % (size - 8)
    clip[t, y:y + 8, x:x + 8] = 1.0
  clip = (clip - np.asarray(videomae.IMAGENET_MEAN)) / np.asarray(videomae.IMAGENET_STD)
  return jnp.asarray(clip[None], jnp.float32)


def main():
  print("vivit_jax demo: a forward/backward pass on a generated clip "
        "(the training job replaces this once it lands).")
  print(f"devices: {jax.devices()}")
  video = moving_square_clip()
  label = jnp.array([1])

  classifier = build_model(dict(name="vivit", variant="spatio_temporal", num_classes=4,
                                hidden_size=64, num_layers=2, num_heads=4, mlp_dim=128,
                                patch_size=8, tubelet_size=2))
  params = nn.unbox(classifier.init(jax.random.key(0), video)["params"])

  @jax.jit
  def classifier_loss_and_grad(params):
    def loss_fn(p):
      logits = classifier.apply({"params": p}, video)
      return optax.softmax_cross_entropy_with_integer_labels(logits, label).mean()
    return jax.value_and_grad(loss_fn)(params)

  start = time.perf_counter()
  loss, grads = classifier_loss_and_grad(params)
  print(f"ViViT spatio_temporal: loss={float(loss):.4f} "
        f"grad_norm={float(optax.global_norm(grads)):.4f} "
        f"({time.perf_counter() - start:.1f}s incl. compile)")

  mae = build_model(dict(name="videomae", hidden_size=64, num_layers=2, num_heads=4,
                         mlp_dim=128, patch_size=8, tubelet_size=2, decoder_hidden_size=32,
                         decoder_layers=1, decoder_heads=2, decoder_mlp_dim=64,
                         mask_ratio=0.75))
  mask = masking.make_mask(jax.random.key(1), 1, (4, 4, 4), "tube", 0.75)
  mae_params = nn.unbox(mae.init(jax.random.key(0), video, mask)["params"])
  targets = videomae.reconstruction_targets(video, 8, 2)

  @jax.jit
  def mae_loss_and_grad(params, mask):
    def loss_fn(p):
      out = mae.apply({"params": p}, video, mask)
      return videomae.reconstruction_loss(out["predictions"], targets, out["masked_indices"])
    return jax.value_and_grad(loss_fn)(params)

  loss, grads = mae_loss_and_grad(mae_params, mask)
  print(f"VideoMAE (tube mask 75%): loss={float(loss):.4f} "
        f"grad_norm={float(optax.global_norm(grads)):.4f}")


if __name__ == "__main__":
  main()
