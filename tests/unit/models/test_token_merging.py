"""Token merging (models/token_merging.py, ToMe) against an independent NumPy
reference, and as a model option: off by default and bitwise identical at
r = 0, static token counts per block, the class token never merged,
size-weighted pooling, jax.export, and int8 on top."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from support import random_params
from vivit_jax.models import quantized
from vivit_jax.models import attention, build_model
from vivit_jax.models import token_merging as tome

VIDEO = (4, 16, 16, 3)  # 2 x 4 x 4 = 32 tubelet tokens with patch 4, tubelet 2
SMALL = dict(name="vivit", hidden_size=32, num_layers=3, num_heads=2, mlp_dim=64,
             patch_size=4, tubelet_size=2, num_classes=5, temporal_layers=1)


def _model(**overrides):
  return build_model(dict(SMALL, **overrides))


def _video(seed=0, batch=2):
  return np.random.default_rng(seed).standard_normal((batch, *VIDEO)).astype(np.float32)


def _logits(model, params, video):
  return np.asarray(random_params.jit_apply(model, params, video))


# ---- the NumPy reference (ToMe's merge.py, one example at a time) ----

def _reference_merge(metric, x, size, r, protect_first):
  """ToMe's bipartite soft matching + size-weighted merge, in float64 loops."""
  xs, sizes = [], []
  for m, xi, si in zip(np.asarray(metric, np.float64), np.asarray(x, np.float64),
                       np.asarray(size, np.float64)):
    m = m / np.linalg.norm(m, axis=-1, keepdims=True)
    a, b = np.arange(0, len(m), 2), np.arange(1, len(m), 2)
    scores = m[a] @ m[b].T
    if protect_first:
      scores[0] = -np.inf
    best, best_b = scores.max(-1), scores.argmax(-1)
    order = np.argsort(-best, kind="stable")
    merged, kept = order[:r], np.sort(order[r:])
    weighted = xi * si
    dst_x, dst_s = weighted[b].copy(), si[b].copy()
    for src in merged:
      dst_x[best_b[src]] += weighted[a[src]]
      dst_s[best_b[src]] += si[a[src]]
    new_x = np.concatenate([weighted[a[kept]], dst_x])
    new_s = np.concatenate([si[a[kept]], dst_s])
    xs.append(new_x / new_s)
    sizes.append(new_s)
  return np.stack(xs), np.stack(sizes)


def _reference_attention(x, p, size, heads):
  """Multi-head attention with log(size) added to each key's logits."""
  x = np.asarray(x, np.float64)
  q, k, v = (np.einsum("bld,dnh->blnh", x, np.asarray(p[n]["kernel"]))
             + np.asarray(p[n]["bias"]) for n in ("query", "key", "value"))
  logits = np.einsum("bqnh,bknh->bnqk", q, k) / np.sqrt(q.shape[-1])
  logits = logits + np.log(np.asarray(size, np.float64))[:, None, None, :, 0]
  weights = np.exp(logits - logits.max(-1, keepdims=True))
  weights /= weights.sum(-1, keepdims=True)
  out = np.einsum("bnqk,bknh->bqnh", weights, v)
  return (np.einsum("blnh,nhd->bld", out, np.asarray(p["out"]["kernel"]))
          + np.asarray(p["out"]["bias"])), k.mean(axis=2)


# ---- the merging step and proportional attention ----

@pytest.mark.parametrize("length,r,protect", [(16, 5, False), (17, 8, True), (9, 4, True)])
def test_merge_step_matches_the_numpy_reference(length, r, protect):
  rng = np.random.default_rng(length)
  metric = rng.standard_normal((3, length, 6)).astype(np.float32)
  x = rng.standard_normal((3, length, 5)).astype(np.float32)
  size = rng.integers(1, 4, (3, length, 1)).astype(np.float32)
  assert tome.merged_r(length, r, protect) == r
  plan = jax.jit(tome.bipartite_soft_matching, static_argnums=(1, 2))(metric, r, protect)
  got_x, got_size = jax.jit(tome.merge_wavg)(plan, x, size)
  want_x, want_size = _reference_merge(metric, x, size, r, protect)
  assert got_x.shape == (3, length - r, 5)
  np.testing.assert_allclose(got_size, want_size, rtol=0, atol=0)
  np.testing.assert_allclose(got_x, want_x, rtol=1e-5, atol=1e-5)
  # Merging conserves the total size and the size-weighted sum of the tokens.
  np.testing.assert_allclose(got_size.sum(1), size.sum(1))
  np.testing.assert_allclose((got_x * got_size).sum(1), (x * size).sum(1), rtol=1e-4, atol=1e-4)


def test_a_protected_first_token_is_never_merged_even_when_it_matches_best():
  metric = np.random.default_rng(0).standard_normal((1, 8, 4)).astype(np.float32)
  metric[0, 1] = metric[0, 0]  # token 0 (set A) is identical to token 1 (set B)
  free = tome.bipartite_soft_matching(metric, 1, False)
  assert int(free.sources[0, 0]) == 0  # unprotected, it is the best match
  kept = tome.bipartite_soft_matching(metric, 3, True)
  assert 0 not in np.asarray(kept.sources) and int(kept.unmerged[0, 0]) == 0


@pytest.mark.parametrize("impl", ["xla", "chunked"])
def test_proportional_attention_matches_the_numpy_reference(impl):
  layer = attention.MultiHeadAttention(num_heads=2, attention_impl=impl)
  rng = np.random.default_rng(1)
  x = rng.standard_normal((2, 7, 8)).astype(np.float32)
  size = rng.integers(1, 6, (2, 7, 1)).astype(np.float32)
  params = random_params.random_params(layer, x)
  out, keys = random_params.jit_apply(layer, params, x, size=size)
  want, want_keys = _reference_attention(x, params, size, 2)
  np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(keys, want_keys, rtol=1e-5, atol=1e-5)
  # Unit sizes are plain attention.
  plain = random_params.jit_apply(layer, params, x)
  ones, _ = random_params.jit_apply(layer, params, x, size=np.ones_like(size))
  np.testing.assert_allclose(ones, plain, rtol=1e-6, atol=1e-6)


# ---- the model option ----

@pytest.mark.parametrize("variant,classifier", [("spatio_temporal", "token"),
                                                ("spatio_temporal", "gap"),
                                                ("factorised_encoder", "token")])
def test_r_zero_equals_the_plain_model_bitwise(variant, classifier):
  plain = _model(variant=variant, classifier=classifier)
  params = random_params.random_params(plain, _video())
  want = _logits(plain, params, _video())
  for off in [(0,), (0, 0, 0), []]:
    got = _logits(_model(variant=variant, classifier=classifier, token_merging=off), params,
                  _video())
    np.testing.assert_array_equal(got, want)
  merged = _logits(_model(variant=variant, classifier=classifier, token_merging=(4,)), params,
                   _video())
  assert not np.array_equal(merged, want)


def _block_outputs(model, params, video):
  """`[(tokens, sizes)]` each block of the (spatial) encoder returned."""
  _, state = jax.jit(lambda p, v: model.apply({"params": p}, v, capture_intermediates=True,
                                              mutable=["intermediates"]))(params, video)
  encoder = state["intermediates"]["encoder"]
  return [encoder[f"block_{i:02d}"]["__call__"][0] for i in range(model.num_layers)]


@pytest.mark.parametrize("classifier,merging,counts", [
    ("token", (4,), (29, 25, 21)),          # 32 tokens + the class token
    ("gap", (8, 0, 5), (24, 24, 19)),       # a schedule, a block merging none
    ("token", (100,), (17, 9, 5)),          # capped at half the unprotected tokens
])
def test_token_counts_per_block_are_static_for_r_and_a_schedule(classifier, merging, counts):
  model = _model(classifier=classifier, token_merging=merging)
  protect = classifier == "token"
  assert tome.token_counts(32 + protect, tome.schedule(merging, 3), protect) == counts
  params = random_params.random_params(model, _video())
  outputs = _block_outputs(model, params, _video())
  assert tuple(tokens.shape[1] for tokens, _ in outputs) == counts
  for tokens, size in outputs:
    assert size.shape == tokens.shape[:2] + (1,)
    np.testing.assert_allclose(np.asarray(size).sum(axis=(1, 2)), 32 + protect)
    if protect:  # the class token: never merged, still first
      np.testing.assert_array_equal(np.asarray(size)[:, 0, 0], 1.0)


def test_the_factorised_encoders_spatial_encoder_merges_per_frame():
  model = _model(variant="factorised_encoder", classifier="token", token_merging=(3,))
  params = random_params.random_params(model, _video())
  outputs = _block_outputs(model, params, _video(batch=2))
  # 2 time indices x 2 clips = 4 frames of 16 spatial tokens + a class token each.
  assert [tokens.shape[:2] for tokens, _ in outputs] == [(4, 14), (4, 11), (4, 8)]


def test_gap_pooling_is_the_size_weighted_mean_of_the_merged_tokens():
  model = _model(classifier="gap", num_classes=0, token_merging=(6,))
  params = random_params.random_params(model, _video())
  pooled, state = jax.jit(lambda p, v: model.apply(
      {"params": p}, v, capture_intermediates=True, mutable=["intermediates"]))(params, _video())
  tokens, size = state["intermediates"]["encoder"]["__call__"][0]
  tokens, size = np.asarray(tokens, np.float64), np.asarray(size, np.float64)
  want = (tokens * size).sum(1) / size.sum(1)
  np.testing.assert_allclose(pooled, want, rtol=1e-5, atol=1e-5)
  assert not np.allclose(pooled, tokens.mean(1), atol=1e-3)  # sizes differ, so it matters


@pytest.mark.parametrize("variant", ["factorised_self_attention", "factorised_dot_product"])
def test_models_3_and_4_refuse_token_merging_by_name(variant):
  model = _model(variant=variant, classifier="gap", token_merging=(2,))
  with pytest.raises(ValueError, match="model.token_merging=.*spatio_temporal"):
    jax.eval_shape(model.init, jax.random.PRNGKey(0), _video())


def test_a_schedule_of_the_wrong_length_or_sign_fails_by_name():
  for bad in [(2, 2), (1, -1, 1)]:
    with pytest.raises(ValueError, match=r"model.token_merging=\("):
      jax.eval_shape(_model(token_merging=bad).init, jax.random.PRNGKey(0), _video())
  assert tome.parse("8") == (8,) and tome.parse("8,4,0") == (8, 4, 0)
  with pytest.raises(ValueError, match="--token-merging=x"):
    tome.parse("x")


@pytest.mark.slow
def test_an_exported_merged_model_gives_the_jitted_logits():
  model = _model(classifier="token", token_merging=(5, 3, 2))
  params = random_params.random_params(model, _video())
  fn = lambda p, x: model.apply({"params": p}, x)
  specs = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), params)
  batch = jax.export.symbolic_shape("b")[0]
  exported = jax.export.export(jax.jit(fn), platforms=("cpu",))(
      specs, jax.ShapeDtypeStruct((batch, *VIDEO), jnp.float32))
  exported = jax.export.deserialize(exported.serialize())
  for n in (1, 3):
    video = _video(seed=n, batch=n)
    np.testing.assert_allclose(exported.call(params, video), jax.jit(fn)(params, video),
                               rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("method", sorted(quantized.METHODS))
def test_int8_and_token_merging_combine(method):
  model = _model(classifier="token", token_merging=(4,))
  params = random_params.random_params(model, _video(), scale=0.2)
  qmodel, qparams = quantized.quantize_model_params(model, params, VIDEO, method)
  video = _video(seed=5)
  float_logits = _logits(model, params, video)
  logits = np.asarray(jax.jit(lambda p, x: qmodel.apply({"params": p}, x))(qparams, video))
  assert logits.shape == float_logits.shape == (2, 5)
  error = np.abs(logits - float_logits).max()
  assert 0 < error < 0.1 * np.abs(float_logits).max(), (error, float_logits)


def test_merging_is_differentiable_so_training_with_it_is_allowed():
  model = _model(classifier="gap", token_merging=(4,), remat_policy="full")
  params = random_params.random_params(model, _video())
  grads = jax.jit(jax.grad(lambda p: model.apply({"params": p}, _video(), train=True).sum()))(
      params)
  leaves = jax.tree_util.tree_leaves(grads)
  assert all(np.isfinite(g).all() for g in leaves)
  assert np.abs(grads["encoder"]["block_00"]["attention"]["query"]["kernel"]).max() > 0


@pytest.mark.parametrize("variant,classifier", [("spatio_temporal", "token"),
                                                ("spatio_temporal", "gap"),
                                                ("factorised_encoder", "token")])
def test_the_mac_count_of_a_merged_model_matches_xla_and_drops(variant, classifier):
  from vivit_jax.models import flops  # pylint: disable=g-import-not-at-top
  config = dict(SMALL, variant=variant, classifier=classifier, hidden_size=128, mlp_dim=512)
  merged = dict(config, token_merging=(4,))
  model = build_model(merged)
  video = jnp.ones((1, *VIDEO))
  specs = jax.eval_shape(model.init, jax.random.PRNGKey(0), video)["params"]
  cost = jax.jit(lambda p, v: model.apply({"params": p}, v)).lower(specs, video).compile()
  cost = cost.cost_analysis()
  xla = float((cost[0] if isinstance(cost, (list, tuple)) else cost)["flops"])
  analytic = 2 * flops.forward_macs(merged, VIDEO)
  assert analytic <= xla <= 1.15 * analytic, (analytic, xla)
  assert analytic < 2 * flops.forward_macs(config, VIDEO)


def test_the_option_is_a_config_key_settable_from_the_command_line():
  import os  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  from support import REPO  # pylint: disable=g-import-not-at-top
  from vivit_jax.train.experiment import load_config_file  # pylint: disable=g-import-not-at-top
  path = os.path.join(REPO, "configs", "demo_finetune.py")
  assert tuple(load_config_file(path).model.token_merging) == ()  # off by default
  argv = ["prog", f"--config={path}", "--config.model.token_merging=(8,4,4,0)"]
  values = flags.FlagValues()
  config_flags.DEFINE_config_file("config", flag_values=values, sys_argv=argv)
  values(argv)
  assert build_model(values.config.model).token_merging == (8, 4, 4, 0)
  with pytest.raises(Exception, match="token_merge"):
    load_config_file(path, {"model.token_merge": (8,)})
