"""Analytic FLOP and parameter counts against the papers and against XLA."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vivit_jax.models import build_model, flops, masking

K400 = dict(name="vivit", num_classes=400)
VIDEOMAE_FT = dict(K400, variant="spatio_temporal", classifier="gap", fc_norm=True,
                   pos_embedding="sinusoid")


@pytest.mark.parametrize("size,params_m,gflops", [("S", 22, 57), ("B", 87, 180), ("L", 305, 597),
                                                  ("H", 633, 1192)])
def test_videomae_paper_table_16x224(size, params_m, gflops):
  """VideoMAE (Tong et al., 2022), Kinetics-400 fine-tuned ViTs, 16x224, GFLOPs = GMACs."""
  summary = flops.summary(dict(VIDEOMAE_FT, size=size), (16, 224, 224, 3))
  assert abs(summary["params_m"] - params_m) / params_m < 0.01
  assert abs(summary["gmacs"] - gflops) / gflops < 0.005


@pytest.mark.parametrize("variant,classifier,gflops", [
    ("spatio_temporal", "token", 455.2), ("factorised_encoder", "token", 284.4)])
def test_vivit_paper_table_2(variant, classifier, gflops):
  """ViViT (Arnab et al., 2021) Table 2, ViViT-B 16x2, 32 frames at 224."""
  summary = flops.summary(dict(K400, size="B", variant=variant, classifier=classifier),
                          (32, 224, 224, 3))
  assert abs(summary["gmacs"] - gflops) / gflops < 0.01


def _xla_flops(fn, *args):
  cost = jax.jit(fn).lower(*args).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost["flops"])


@pytest.mark.parametrize("variant,classifier", [
    ("spatio_temporal", "token"), ("factorised_encoder", "token"),
    ("factorised_self_attention", "gap"), ("factorised_dot_product", "gap")])
def test_analytic_count_matches_xla_cost_analysis(variant, classifier):
  config = dict(name="vivit", variant=variant, classifier=classifier, hidden_size=128,
                num_layers=2, num_heads=4, mlp_dim=512, temporal_layers=1, patch_size=8,
                tubelet_size=2, num_classes=10)
  model = build_model(config)
  video = jnp.ones((1, 8, 32, 32, 3))
  params = nn.unbox(jax.eval_shape(lambda: model.init(jax.random.key(0), video))["params"])
  xla = _xla_flops(lambda p, v: model.apply({"params": p}, v), params, video)
  analytic = 2 * flops.forward_macs(config, video.shape[1:])
  # XLA also counts normalisation, softmax and activations: a few percent more.
  assert analytic <= xla <= 1.15 * analytic, (analytic, xla)


def test_masked_autoencoder_count_matches_xla():
  config = dict(name="videomae", hidden_size=128, num_layers=2, num_heads=4, mlp_dim=512,
                patch_size=8, tubelet_size=2, decoder_hidden_size=64, decoder_layers=1,
                decoder_heads=2, decoder_mlp_dim=256, mask_ratio=0.75)
  model = build_model(config)
  video = jnp.ones((1, 8, 32, 32, 3))
  mask = masking.make_mask(jax.random.key(0), 1, (4, 4, 4), "tube", 0.75)
  params = nn.unbox(jax.eval_shape(lambda: model.init(jax.random.key(0), video, mask))["params"])
  xla = _xla_flops(lambda p, v, m: model.apply({"params": p}, v, m)["predictions"], params,
                   video, mask)
  analytic = 2 * flops.forward_macs(config, video.shape[1:])
  assert analytic <= xla <= 1.15 * analytic, (analytic, xla)
  assert flops.count_params(config, video.shape[1:]) == sum(
      int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(params))
