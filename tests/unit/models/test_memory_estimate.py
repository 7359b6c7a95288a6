"""The analytic training-memory estimate (vivit_jax/models/memory.py)."""

import pytest

from vivit_jax.models import flops, memory

TINY = dict(name="vivit", hidden_size=32, num_layers=2, num_heads=4, mlp_dim=64, patch_size=8,
            tubelet_size=2, num_classes=10)
CLIP = (8, 32, 32, 3)


def test_state_terms_follow_the_parameter_count_and_optimizer():
  params = flops.count_params(TINY, CLIP)
  adam = memory.training_memory(TINY, CLIP, 4, "adamw", "none")
  sgd = memory.training_memory(TINY, CLIP, 4, "sgd", "none")
  assert adam["params"] == adam["grads"] == 4 * params
  assert adam["opt_state"] == 8 * params and sgd["opt_state"] == 4 * params
  assert adam["total"] == sum(v for k, v in adam.items() if k != "total")


def test_remat_orders_the_activation_estimate_and_it_scales_with_batch():
  by_policy = {p: memory.activation_bytes(TINY, CLIP, 4, p) for p in ("none", "dots", "full")}
  assert by_policy["none"] > by_policy["dots"] > by_policy["full"] > 0
  # 4 x 4 x 4 tokens + CLS, two blocks of 34 h bytes, plus the clip twice.
  assert by_policy["none"] == 2 * 34 * 32 * 65 * 4 + 6 * 4 * 8 * 32 * 32 * 3
  assert memory.activation_bytes(TINY, CLIP, 8, "dots") > 1.9 * by_policy["dots"]
  with pytest.raises(ValueError, match="remat_policy"):
    memory.activation_bytes(TINY, CLIP, 4, "some")


def test_lightest_remat_that_fits_picks_by_device_memory():
  sizes = {p: memory.training_memory(TINY, CLIP, 4, "adamw", p)["total"]
           for p in ("none", "dots", "full")}
  assert memory.lightest_remat_that_fits(TINY, CLIP, 4, 2 * sizes["none"]) == "none"
  assert memory.lightest_remat_that_fits(TINY, CLIP, 4, sizes["dots"] / 0.75) == "dots"
  assert memory.lightest_remat_that_fits(TINY, CLIP, 4, sizes["full"] / 0.75) == "full"
