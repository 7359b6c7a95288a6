"""Tokenisers and positional embeddings (models/embedding.py): the token grid,
tubelet projection as patch-times-kernel, kernel inflation, the sinusoid
formula, grid interpolation and the position-embedding kinds."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vivit_jax.models import embedding as emb


def test_as_pair_reads_ints_and_pairs_and_refuses_other_lengths():
  assert emb.as_pair(4) == (4, 4) and emb.as_pair(np.int64(3)) == (3, 3)
  assert emb.as_pair([2, 5]) == (2, 5) and emb.as_pair((6, 1)) == (6, 1)
  for bad in ([1], [1, 2, 3]):
    with pytest.raises(ValueError, match="expected an int or a pair"):
      emb.as_pair(bad)


def test_token_grid_divides_each_axis_and_rounds_strided_frames_up():
  assert emb.token_grid((8, 12, 20, 3), (4, 5), 2) == (4, 3, 4)
  assert emb.token_grid((7, 4, 4), 2, 2, frame_stride=2) == (2, 2, 2)  # frames 0,2,4,6
  assert emb.token_grid((8, 4, 4), 4, 1, frame_stride=3) == (3, 1, 1)  # frames 0,3,6
  for shape, name in (((3, 4, 4), "num_frames=3"), ((2, 6, 4), "height=6"),
                      ((2, 4, 5), "width=5")):
    with pytest.raises(ValueError, match=name):
      emb.token_grid(shape, 4, 2)


@pytest.mark.parametrize("tubelet", [2, 3])
def test_inflated_kernels_put_the_2d_kernel_where_documented(tubelet):
  k2 = np.arange(2 * 2 * 3 * 4, dtype=np.float32).reshape(2, 2, 3, 4) + 1
  central = np.asarray(emb.inflate_2d_kernel(k2, tubelet, "central_frame"))
  assert central.shape == (tubelet, 2, 2, 3, 4)
  np.testing.assert_array_equal(central[tubelet // 2], k2)
  assert np.count_nonzero(central) == k2.size
  average = np.asarray(emb.inflate_2d_kernel(k2, tubelet, "average"))
  np.testing.assert_allclose(average, np.broadcast_to(k2 / tubelet, average.shape), rtol=1e-6)
  with pytest.raises(ValueError, match="inflation method must be one of"):
    emb.inflate_2d_kernel(k2, tubelet, "median")
  with pytest.raises(ValueError, match=r"must be \(ph, pw, C, D\)"):
    emb.inflate_2d_kernel(k2[0], tubelet)


def test_sinusoid_table_interleaves_sin_and_cos_of_the_standard_frequencies():
  table = emb.sinusoid_table(7, 6)
  assert table.shape == (7, 6) and table.dtype == np.float32
  p = np.arange(7)[:, None]
  for i in range(3):
    freq = 10000.0 ** (-2 * i / 6)
    np.testing.assert_allclose(table[:, 2 * i], np.sin(p[:, 0] * freq), atol=1e-6)
    np.testing.assert_allclose(table[:, 2 * i + 1], np.cos(p[:, 0] * freq), atol=1e-6)


def test_grid_interpolation_keeps_equal_grids_and_resizes_a_linear_ramp_linearly():
  pos = jnp.arange(2 * 4 * 3, dtype=jnp.float32).reshape(1, 8, 3)
  assert emb.interpolate_grid_embedding(pos, (2, 4), (2, 4)) is pos
  ramp = jnp.broadcast_to(jnp.arange(4, dtype=jnp.float32)[:, None], (4, 2)).reshape(1, 4, 2)
  out = np.asarray(emb.interpolate_grid_embedding(ramp, (4,), (8,)))
  assert out.shape == (1, 8, 2)
  np.testing.assert_allclose(out[0, :, 0], np.asarray(jax.image.resize(
      jnp.arange(4.0), (8,), "linear")), atol=1e-6)
  nearest = emb.interpolate_grid_embedding(pos, (2, 4), (4, 8), method="nearest")
  assert nearest.shape == (1, 32, 3)
  np.testing.assert_array_equal(np.asarray(nearest)[0, 0], np.asarray(pos)[0, 0])
  with pytest.raises(ValueError, match="embedding has 8 positions, grid"):
    emb.interpolate_grid_embedding(pos, (3, 3), (2, 2))


def _tubelet_reference(video, kernel, bias, tubelet, ph, pw):
  b, t, h, w, c = video.shape
  x = video.reshape(b, t // tubelet, tubelet, h // ph, ph, w // pw, pw, c)
  x = x.transpose(0, 1, 3, 5, 2, 4, 6, 7)
  return np.einsum("bthwijkc,ijkcd->bthwd", x, kernel) + bias


def test_tubelet_embedding_projects_each_tubelet_and_strides_frames_first():
  video = np.random.default_rng(0).standard_normal((2, 8, 4, 6, 3)).astype(np.float32)
  layer = emb.TubeletEmbedding(5, patch_size=(2, 3), tubelet_size=2)
  params = nn.unbox(jax.jit(layer.init)(jax.random.PRNGKey(0), video))["params"]
  kernel = np.asarray(params["projection"]["kernel"])
  assert kernel.shape == (2, 2, 3, 3, 5)
  bias = np.random.default_rng(1).standard_normal(5).astype(np.float32)
  params = {"projection": {"kernel": kernel, "bias": bias}}
  got = np.asarray(jax.jit(layer.apply)({"params": params}, video))
  np.testing.assert_allclose(got, _tubelet_reference(video, kernel, bias, 2, 2, 3),
                             atol=1e-4, rtol=1e-4)
  strided = emb.TubeletEmbedding(5, patch_size=(2, 3), tubelet_size=2, frame_stride=2)
  got = np.asarray(jax.jit(strided.apply)({"params": params}, video))
  np.testing.assert_allclose(got, _tubelet_reference(video[:, ::2], kernel, bias, 2, 2, 3),
                             atol=1e-4, rtol=1e-4)
  with pytest.raises(ValueError, match=r"video must be \(B, T, H, W, C\)"):
    layer.apply({"params": params}, video[0])


def test_position_embedding_kinds_add_their_table():
  x = jnp.ones((2, 6, 4))
  learned = emb.PositionEmbedding(6)
  params = nn.unbox(learned.init(jax.random.PRNGKey(0), x))["params"]
  table = np.asarray(params["embedding"])
  assert table.shape == (6, 4) and 0.005 < table.std() < 0.05
  np.testing.assert_allclose(learned.apply({"params": params}, x), np.broadcast_to(1 + table, (2, 6, 4)),
                             rtol=1e-6)
  sinusoid = emb.PositionEmbedding(6, kind="sinusoid")
  assert sinusoid.init(jax.random.PRNGKey(0), x) == {}
  np.testing.assert_allclose(sinusoid.apply({}, x),
                             np.broadcast_to(1 + emb.sinusoid_table(6, 4), (2, 6, 4)), rtol=1e-6)
  split = emb.PositionEmbedding(3, kind="sinusoid", broadcast_shape=(3, 1, 4))
  out = np.asarray(split.apply({}, jnp.zeros((2, 3, 5, 4))))
  np.testing.assert_allclose(out[1, :, 4], emb.sinusoid_table(3, 4), rtol=1e-6)
  with pytest.raises(ValueError, match="pos_embedding must be 'learned' or 'sinusoid'"):
    emb.PositionEmbedding(6, kind="rope").init(jax.random.PRNGKey(0), x)
