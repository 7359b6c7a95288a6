"""ViViT variants: shapes, dtypes, jit/grad, factorisation, embeddings."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vivit_jax.models import attention, build_model, embedding

TINY = dict(name="vivit", hidden_size=32, num_layers=2, num_heads=4, mlp_dim=64,
            temporal_layers=1, num_classes=5)
VARIANTS = [("spatio_temporal", "token"), ("spatio_temporal", "gap"),
            ("factorised_encoder", "token"), ("factorised_encoder", "gap"),
            ("factorised_self_attention", "gap"), ("factorised_dot_product", "gap")]


def init(model, video, seed=0):
  return nn.unbox(model.init(jax.random.key(seed), video)["params"])


def random_params(params, seed=1):
  """Replaces every parameter by N(0, 0.5) so no gradient is zero by init."""
  leaves, tree = jax.tree_util.tree_flatten(params)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  return jax.tree_util.tree_unflatten(
      tree, [0.5 * jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves)])


@pytest.mark.parametrize("variant,classifier", VARIANTS)
@pytest.mark.parametrize("shape,patch,tubelet", [((4, 16, 16), 8, 2), ((6, 24, 16), (8, 4), 3)])
def test_shapes_dtypes_and_tokens(variant, classifier, shape, patch, tubelet):
  model = build_model(dict(TINY, variant=variant, classifier=classifier, patch_size=patch,
                           tubelet_size=tubelet))
  video = jnp.ones((2,) + shape + (3,))
  params = init(model, video)
  logits, state = model.apply({"params": params}, video, mutable=["intermediates"])
  chex.assert_shape(logits, (2, 5))
  chex.assert_type(logits, jnp.float32)
  chex.assert_tree_all_finite(logits)
  tokens = state["intermediates"]["tokens"][0]
  nt, nh, nw = embedding.token_grid(shape, patch, tubelet)
  expected_len = {"spatio_temporal": nt * nh * nw + (classifier == "token"),
                  "factorised_encoder": nt + (classifier == "token")}.get(variant, nt * nh * nw)
  chex.assert_shape(tokens, (2, expected_len, 32))


@pytest.mark.parametrize("variant,classifier", VARIANTS)
def test_jit_and_grad_reach_the_embedding(variant, classifier):
  model = build_model(dict(TINY, variant=variant, classifier=classifier, patch_size=8,
                           tubelet_size=2, drop_path_rate=0.1, dropout_rate=0.1,
                           num_layers=1))
  video = jax.random.normal(jax.random.key(0), (2, 4, 16, 16, 3))
  params = random_params(init(model, video))

  @jax.jit
  def loss_grad(p):
    def loss(p):
      logits = model.apply({"params": p}, video, train=True,
                           rngs={"dropout": jax.random.key(3)})
      return jnp.mean(jax.nn.log_softmax(logits)[:, 0])
    return jax.value_and_grad(loss)(p)

  value, grads = loss_grad(params)
  chex.assert_tree_all_finite(grads)
  assert np.isfinite(value)
  assert float(jnp.abs(grads["embedding"]["projection"]["kernel"]).sum()) > 0


def test_dropout_and_drop_path_only_in_training():
  model = build_model(dict(TINY, patch_size=8, tubelet_size=2, drop_path_rate=0.5,
                           dropout_rate=0.3))
  video = jax.random.normal(jax.random.key(0), (2, 4, 16, 16, 3))
  params = random_params(init(model, video))
  eval_a = model.apply({"params": params}, video)
  eval_b = model.apply({"params": params}, video)
  train_a = model.apply({"params": params}, video, train=True, rngs={"dropout": jax.random.key(1)})
  train_b = model.apply({"params": params}, video, train=True, rngs={"dropout": jax.random.key(2)})
  np.testing.assert_array_equal(eval_a, eval_b)
  assert not np.allclose(train_a, train_b)


def test_bfloat16_compute_with_float32_params():
  model = build_model(dict(TINY, patch_size=8, tubelet_size=2, dtype="bfloat16"))
  video = jax.random.normal(jax.random.key(0), (2, 4, 16, 16, 3))
  params = init(model, video)
  assert all(x.dtype == jnp.float32 for x in jax.tree_util.tree_leaves(params))
  params = random_params(params)  # a zero head would make both logits exactly 0
  logits, state = jax.jit(lambda p: model.apply({"params": p}, video,
                                                mutable=["intermediates"]))(params)
  assert state["intermediates"]["tokens"][0].dtype == jnp.bfloat16
  chex.assert_type(logits, jnp.float32)
  ref = build_model(dict(TINY, patch_size=8, tubelet_size=2)).apply({"params": params}, video)
  scale = float(np.abs(ref).max())
  assert scale > 0.5 and float(np.abs(ref[0] - ref[1]).max()) > 0.1 * scale
  # bfloat16 keeps ~3 significant digits; 5% of the logit scale is far above
  # its rounding and far below any real change of the computation.
  np.testing.assert_allclose(logits, ref, atol=0.05 * scale)
  assert not np.array_equal(np.asarray(logits), np.asarray(ref))  # really computed in bf16


def test_cudnn_attention_needs_half_precision():
  model = build_model(dict(TINY, patch_size=8, tubelet_size=2, attention_impl="cudnn"))
  with pytest.raises(ValueError, match="bfloat16"):
    model.init(jax.random.key(0), jnp.ones((1, 4, 16, 16, 3)))


def test_models_3_and_4_refuse_a_cls_token_clearly():
  model = build_model(dict(TINY, variant="factorised_dot_product", classifier="token",
                           patch_size=8, tubelet_size=2))
  with pytest.raises(ValueError, match="classifier='gap'"):
    model.init(jax.random.key(0), jnp.ones((1, 4, 16, 16, 3)))


def _influence(fn, x):
  """`(T, S, T, S)` boolean: does output token (t, s) depend on input (t', s')?"""
  t, s = x.shape[1], x.shape[2]
  jac = jax.jit(jax.jacrev(lambda y: fn(y)[0].sum(-1)))(x)  # (T, S, 1, T, S, D)
  return np.asarray(jnp.abs(jac[:, :, 0]).sum(-1) > 1e-9).reshape(t, s, t, s)


def test_factorised_dot_product_attention_sees_only_row_and_column():
  t, s, d = 3, 4, 8
  layer = attention.FactorisedDotProductAttention(num_heads=2)
  x = jax.random.normal(jax.random.key(0), (1, t, s, d))
  params = random_params(nn.unbox(layer.init(jax.random.key(0), x)["params"]))
  seen = _influence(lambda y: layer.apply({"params": params}, y), x)
  same_t = np.arange(t)[:, None, None, None] == np.arange(t)[None, None, :, None]
  same_s = np.arange(s)[None, :, None, None] == np.arange(s)[None, None, None, :]
  np.testing.assert_array_equal(seen, np.broadcast_to(same_t | same_s, seen.shape))


def _zero_output(params, *paths):
  """`params` with the output projection of each named sublayer set to zero."""
  params = jax.tree_util.tree_map(lambda x: x, params)
  for path in paths:
    node = params
    for key in path[:-1]:
      node = node[key]
    node[path[-1]] = jax.tree_util.tree_map(jnp.zeros_like, node[path[-1]])
  return params


@pytest.mark.parametrize("kept", ["spatial_attention", "temporal_attention"])
def test_factorised_self_attention_block_mixes_one_axis_per_half(kept):
  """Model 3, probed through `EncoderBlock` itself (its own reshapes): with the
  other attention half and the MLP output zeroed, output token (t, s) depends
  exactly on the tokens of frame t (spatial half) or of location s (temporal)."""
  from vivit_jax.models.layers import EncoderBlock
  t, s, d = 3, 4, 8
  block = EncoderBlock("factorised_self_attention", num_heads=2, mlp_dim=16)
  x = jax.random.normal(jax.random.key(0), (1, t, s, d))
  params = random_params(nn.unbox(block.init(jax.random.key(0), x)["params"]))
  other = "temporal_attention" if kept == "spatial_attention" else "spatial_attention"
  probe = _zero_output(params, (other, "out"), ("mlp", "fc2"))
  seen = _influence(lambda y: block.apply({"params": probe}, y), x)
  same_t = np.arange(t)[:, None, None, None] == np.arange(t)[None, None, :, None]
  same_s = np.arange(s)[None, :, None, None] == np.arange(s)[None, None, None, :]
  allowed = same_t if kept == "spatial_attention" else same_s
  np.testing.assert_array_equal(seen, np.broadcast_to(allowed, seen.shape))
  # The whole block, by contrast, lets every token reach every other one.
  full = _influence(lambda y: block.apply({"params": params}, y), x)
  assert full.all()


def test_factorised_encoder_spatial_stage_sees_one_tubelet_slice():
  """Model 2: the spatial encoder's output rows for time index i depend on the
  frames of tubelet i only; the logits depend on every tubelet."""
  model = build_model(dict(TINY, variant="factorised_encoder", classifier="token",
                           patch_size=8, tubelet_size=2))
  video = jax.random.normal(jax.random.key(0), (1, 6, 16, 16, 3))  # nt = 3
  params = random_params(init(model, video))

  def spatial_and_logits(v):
    logits, state = model.apply({"params": params}, v, capture_intermediates=True,
                                mutable=["intermediates"])
    spatial = state["intermediates"]["encoder"]["__call__"][0]  # (B * nt, 1 + S, D)
    return np.asarray(spatial).reshape(3, -1), np.asarray(logits)

  base_spatial, base_logits = spatial_and_logits(video)
  for i in range(3):
    spatial, logits = spatial_and_logits(video.at[:, 2 * i:2 * i + 2].add(1.0))
    changed = np.abs(spatial - base_spatial).max(axis=1) > 1e-6
    np.testing.assert_array_equal(changed, np.arange(3) == i)
    assert np.abs(logits - base_logits).max() > 1e-4


@pytest.mark.parametrize("method", ["central_frame", "average"])
def test_inflated_kernel_embeds_a_static_clip_like_the_2d_kernel(method):
  p, c, d, tubelet = 4, 3, 16, 3
  kernel_2d = jax.random.normal(jax.random.key(0), (p, p, c, d))
  frame = jax.random.normal(jax.random.key(1), (8, 8, c))
  clip = jnp.broadcast_to(frame, (1, 6, 8, 8, c))
  module = embedding.TubeletEmbedding(d, p, tubelet)
  params = {"projection": {"kernel": embedding.inflate_2d_kernel(kernel_2d, tubelet, method),
                           "bias": jnp.zeros((d,))}}
  tokens = module.apply({"params": params}, clip)  # (1, 2, 2, 2, d)
  patches = frame.reshape(2, p, 2, p, c).transpose(0, 2, 1, 3, 4)
  expected = jnp.einsum("hwijc,ijcd->hwd", patches, kernel_2d)
  for t in range(tokens.shape[1]):
    np.testing.assert_allclose(tokens[0, t], expected, rtol=1e-5, atol=1e-5)
  if method == "central_frame":
    inflated = embedding.inflate_2d_kernel(kernel_2d, tubelet, method)
    assert float(jnp.abs(inflated[0]).sum()) == 0.0


def test_sinusoid_table_matches_the_formula():
  table = embedding.sinusoid_table(10, 6)
  pos, i = 7, 2  # channel 2i = 4 (sin), 2i + 1 = 5 (cos)
  angle = pos / 10000 ** (2 * i / 6)
  np.testing.assert_allclose(table[pos, 4], np.sin(angle), rtol=1e-6)
  np.testing.assert_allclose(table[pos, 5], np.cos(angle), rtol=1e-6)


def test_position_embedding_interpolation_keeps_a_smooth_grid():
  nt, nh, nw = 2, 4, 4
  coords = np.stack(np.meshgrid(np.arange(nt), np.arange(nh), np.arange(nw), indexing="ij"), -1)
  linear = jnp.asarray(coords.reshape(1, -1, 3), jnp.float32)  # a linear function of position
  out = embedding.interpolate_grid_embedding(linear, (nt, nh, nw), (nt, 8, 8))
  chex.assert_shape(out, (1, nt * 64, 3))
  grid = np.asarray(out).reshape(nt, 8, 8, 3)
  assert np.all(np.diff(grid[..., 1], axis=1) >= -1e-6)  # still increasing along h
  np.testing.assert_allclose(grid[..., 0], np.broadcast_to(np.arange(nt)[:, None, None],
                                                            (nt, 8, 8)))


def test_frame_stride_uniform_sampling():
  """frame_stride=2 embeds frames 0, 2, 4, 6: the logits ignore the odd frames
  and react to every even one."""
  model = build_model(dict(TINY, patch_size=8, tubelet_size=1, frame_stride=2))
  video = jax.random.normal(jax.random.key(0), (1, 8, 16, 16, 3))
  params = init(model, video)
  assert params["pos_embedding"]["embedding"].shape == (4 * 2 * 2 + 1, 32)
  params = random_params(params)
  apply = jax.jit(lambda v: model.apply({"params": params}, v))
  base = apply(video)
  for frame in range(8):
    moved = np.abs(apply(video.at[:, frame].add(3.0)) - base).max()
    if frame % 2:
      assert moved == 0.0, f"frame {frame} is skipped by the stride but moved the logits"
    else:
      assert moved > 1e-3, f"sampled frame {frame} did not reach the logits"


def test_indivisible_input_names_the_axis():
  model = build_model(dict(TINY, patch_size=8, tubelet_size=3))
  with pytest.raises(ValueError, match="num_frames=4"):
    model.init(jax.random.key(0), jnp.ones((1, 4, 16, 16, 3)))


@pytest.mark.slow  # compiling the rematerialised gradient: ~2 min on a loaded 2-core box
@pytest.mark.parametrize("policy", ["full", "dots"])
def test_remat_policies_compute_the_same_values_and_gradients(policy):
  config = dict(TINY, patch_size=8, tubelet_size=2, num_layers=1)
  video = jax.random.normal(jax.random.key(0), (2, 4, 16, 16, 3))
  plain, remat = build_model(config), build_model(dict(config, remat_policy=policy))
  params = random_params(init(plain, video))

  def value_and_grad(model):
    loss = lambda p: jnp.mean(model.apply({"params": p}, video) ** 2)
    return jax.jit(jax.value_and_grad(loss))(params)

  want, got = value_and_grad(plain), value_and_grad(remat)
  assert float(want[0]) > 1e-3
  np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
  chex.assert_trees_all_close(got[1], want[1], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("rate", ["dropout_rate", "attention_dropout_rate", "head_dropout_rate",
                                  "drop_path_rate"])
def test_each_dropout_rate_acts_only_in_training(rate):
  video = jax.random.normal(jax.random.key(0), (2, 4, 16, 16, 3))
  base = build_model(dict(TINY, patch_size=8, tubelet_size=2))
  params = random_params(init(base, video))
  model = build_model(dict(TINY, patch_size=8, tubelet_size=2, **{rate: 0.5}))
  np.testing.assert_allclose(model.apply({"params": params}, video),
                             base.apply({"params": params}, video), rtol=1e-6)
  train = [model.apply({"params": params}, video, train=True, rngs={"dropout": jax.random.key(k)})
           for k in (1, 2)]
  assert not np.allclose(train[0], train[1])
  np.testing.assert_allclose(base.apply({"params": params}, video, train=True,
                                        rngs={"dropout": jax.random.key(1)}),
                             base.apply({"params": params}, video), rtol=1e-6)
