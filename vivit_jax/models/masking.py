"""Token masks for masked video modelling, with a static kept-token count.

A mask is a boolean `(B, N)` array over tokens in (t, h, w) order, True where
the token is hidden from the encoder, the layout of Hugging Face's
`bool_masked_pos`. Every generator hides the same number of tokens in every
example, a Python int known before tracing, so the encoder's input shape is
static under `jax.jit`.

  tube    one spatial mask shared by every time index (VideoMAE), per example.
  random  independent over all spatio-temporal tokens (MAE-ST).
  future  every token of the last `future_frames` time indices; the
          autoencoder then learns to predict the future from the past.
"""

from typing import Sequence, Tuple

import jax
import jax.numpy as jnp

MASK_TYPES = ("tube", "random", "future")


def num_masked_tokens(grid: Sequence[int], mask_type: str, mask_ratio: float = 0.9,
                      future_frames: int = 1) -> int:
  """Number of hidden tokens per example for a `(nt, nh, nw)` token grid."""
  nt, nh, nw = grid
  if mask_type == "tube":
    count = int(mask_ratio * nh * nw) * nt
  elif mask_type == "random":
    count = int(mask_ratio * nt * nh * nw)
  elif mask_type == "future":
    if not 0 < future_frames < nt:
      raise ValueError(f"future_frames must be in [1, {nt - 1}] for {nt} time indices, "
                       f"got {future_frames}")
    count = future_frames * nh * nw
  else:
    raise ValueError(f"mask_type must be one of {MASK_TYPES}, got {mask_type!r}")
  if not 0 < count < nt * nh * nw:
    raise ValueError(f"mask_ratio={mask_ratio} hides {count} of {nt * nh * nw} tokens; "
                     "at least one must be hidden and one kept")
  return count


def _random_mask(rng, batch: int, length: int, count: int):
  """`(batch, length)` boolean masks, each with exactly `count` True entries."""
  noise = jax.random.uniform(rng, (batch, length))
  ranks = jnp.argsort(jnp.argsort(noise, axis=1), axis=1)
  return ranks < count


def make_mask(rng, batch: int, grid: Sequence[int], mask_type: str = "tube",
              mask_ratio: float = 0.9, future_frames: int = 1):
  """Draws a `(batch, nt*nh*nw)` boolean mask; True = hidden. See module docstring."""
  nt, nh, nw = grid
  count = num_masked_tokens(grid, mask_type, mask_ratio, future_frames)
  if mask_type == "tube":
    spatial = _random_mask(rng, batch, nh * nw, count // nt)
    return jnp.broadcast_to(spatial[:, None, :], (batch, nt, nh * nw)).reshape(batch, -1)
  if mask_type == "random":
    return _random_mask(rng, batch, nt * nh * nw, count)
  future = jnp.arange(nt) >= nt - future_frames
  return jnp.broadcast_to(future[None, :, None], (batch, nt, nh * nw)).reshape(batch, -1)


def split_indices(mask, num_masked: int) -> Tuple[jax.Array, jax.Array]:
  """Visible and masked token indices, each in ascending position order.

  Args:
    mask: `(B, N)` boolean, True = hidden, exactly `num_masked` True per row.
    num_masked: the static count.

  Returns:
    `visible (B, N - num_masked)` and `masked (B, num_masked)` int32 indices.
  """
  order = jnp.argsort(mask.astype(jnp.int32), axis=1, stable=True).astype(jnp.int32)
  n_visible = mask.shape[1] - num_masked
  return order[:, :n_visible], order[:, n_visible:]


def gather_tokens(x, indices):
  """`x (B, N, D)`, `indices (B, K)` -> `(B, K, D)`."""
  return jnp.take_along_axis(x, indices[..., None], axis=1)
