"""Proportional token merging (`P%`: merge P% of the tokens entering each
block): the schedule, ToMe's cap, the token counts it implies, the class
token, the `--token-merging` flag's forms, and the model running it."""

import jax
import numpy as np
import pytest

from support import random_params
from vivit_jax.models import build_model, vivit
from vivit_jax.models import token_merging as tome

# VideoMAE-S at 16 x 224: 8 x 14 x 14 tubelet tokens, mean pooling (no class token).
VIDEOMAE_S_TOKENS, VIDEOMAE_S_BLOCKS = 1568, 12


def test_a_quarter_per_block_of_videomae_s_is_the_front_loaded_schedule():
  got = tome.proportional_schedule(VIDEOMAE_S_TOKENS, VIDEOMAE_S_BLOCKS, 0.25, False)
  # Python's round sends halves to the even neighbour: block 3 sees 882 tokens
  # (220.5 -> 220, not 221), block 4 662 (165.5 -> 166), block 10 118
  # (29.5 -> 30) and block 12 66 (16.5 -> 16, not 17).
  assert got == (392, 294, 220, 166, 124, 93, 70, 52, 39, 30, 22, 16)
  counts = tome.token_counts(VIDEOMAE_S_TOKENS, got, protect_first=False)
  assert counts[-1] == 50 and counts[:3] == (1176, 882, 662)


@pytest.mark.parametrize("tokens,blocks,fraction,protect", [
    (1568, 12, 0.1, False), (1568, 12, 0.3, False), (257, 4, 0.25, True),
    (65, 6, 0.2, True), (33, 8, 0.45, False)])
def test_each_block_merges_the_rounded_fraction_of_the_tokens_entering_it(
    tokens, blocks, fraction, protect):
  got = tome.proportional_schedule(tokens, blocks, fraction, protect)
  assert len(got) == blocks
  entering = (tokens,) + tome.token_counts(tokens, got, protect)[:-1]
  for r, length in zip(got, entering):
    mergeable = length - int(protect)
    assert r == min(round(fraction * mergeable), mergeable // 2)
  # The counts are what the schedule's merges leave.
  assert tome.token_counts(tokens, got, protect) == tuple(tokens - np.cumsum(got))


def test_half_per_block_is_capped_at_half_of_each_blocks_mergeable_tokens():
  # 7 mergeable tokens: round(3.5) = 4, but a block merges at most 3.
  assert tome.proportional_schedule(8, 1, 0.5, protect_first=True) == (3,)
  got = tome.proportional_schedule(65, 5, 0.5, protect_first=True)
  assert got == (32, 16, 8, 4, 2)
  assert tome.token_counts(65, got, True) == (33, 17, 9, 5, 3)
  for r, length in zip(got, (65, 33, 17, 9, 5)):
    assert r == tome.merged_r(length, r, True) == (length - 1) // 2


def test_a_class_token_is_not_counted_among_the_mergeable_tokens():
  # 11 tokens: 10 mergeable with a class token (2.5 -> 2), 11 without (2.75 -> 3).
  assert tome.proportional_schedule(11, 1, 0.25, protect_first=True) == (2,)
  assert tome.proportional_schedule(11, 1, 0.25, protect_first=False) == (3,)


def test_zero_percent_is_merging_off_and_out_of_range_fractions_fail():
  assert tome.proportional_schedule(1568, 12, 0.0, False) == (0,) * 12
  assert tome.schedule((0,) * 12, 12) == ()  # the option reads it as off
  for fraction in (-0.1, 0.51, 1.0, float("nan")):
    with pytest.raises(ValueError, match="at most half"):
      tome.proportional_schedule(1568, 12, fraction, False)


@pytest.mark.parametrize("text,want", [("25%", 0.25), ("12.5%", 0.125), ("0%", 0.0),
                                       ("50%", 0.5), ("8", (8,)), ("8,8,4", (8, 8, 4))])
def test_the_flag_reads_a_percentage_a_count_or_a_schedule(text, want):
  got = tome.parse(text)
  assert got == want and isinstance(got, type(want))
  assert tome.parse(tome.flag_value(got)) == got


@pytest.mark.parametrize("text,message", [
    ("60%", "60% is outside 0% to 50%"), ("-5%", "outside 0% to 50%"),
    ("x%", "not a percentage"), ("x", "not a token count"), ("4,-1", "not a token count")])
def test_a_bad_flag_names_the_flag_and_the_valid_forms(text, message):
  with pytest.raises(ValueError) as error:
    tome.parse(text)
  line = str(error.value)
  assert message in line and f"(--token-merging={text})" in line
  assert "0 <= P <= 50" in line and "R0,R1" in line and "\n" not in line


def test_resolve_turns_a_fraction_into_the_schedule_and_keeps_counts():
  assert tome.resolve(0.25, 1568, 12, False) == tome.proportional_schedule(1568, 12, 0.25, False)
  assert tome.resolve((8,), 1568, 12, False) == (8,)
  assert tome.resolve((8, 4), 65, 2, True) == (8, 4)


@pytest.mark.parametrize("variant,classifier,want", [
    ("spatio_temporal", "token", (33, True)),  # 2 x 4 x 4 tubelet tokens + CLS
    ("spatio_temporal", "gap", (32, False)),
    ("factorised_encoder", "token", (17, True)),  # one frame's 4 x 4 + CLS
    ("spatio_temporal", "first", (32, True))])
def test_the_merged_sequence_is_what_the_encoder_merges(variant, classifier, want):
  video = np.random.default_rng(0).standard_normal((2, 4, 16, 16, 3)).astype(np.float32)
  config = dict(name="vivit", hidden_size=32, num_layers=3, num_heads=2, mlp_dim=64,
                patch_size=4, tubelet_size=2, num_classes=5, temporal_layers=1,
                variant=variant, classifier=classifier)
  plain = build_model(config)
  assert vivit.merged_sequence(plain, video.shape[1:]) == want
  tokens, protect = want
  merging = tome.proportional_schedule(tokens, 3, 0.3, protect)
  model = build_model(dict(config, token_merging=merging))
  params = random_params.random_params(plain, video)
  _, state = jax.jit(lambda p, v: model.apply({"params": p}, v, capture_intermediates=True,
                                              mutable=["intermediates"]))(params, video)
  outputs = [state["intermediates"]["encoder"][f"block_{i:02d}"]["__call__"][0][0].shape[-2]
             for i in range(3)]
  assert tuple(outputs) == tome.token_counts(tokens, merging, protect)
  assert outputs[-1] < tokens
