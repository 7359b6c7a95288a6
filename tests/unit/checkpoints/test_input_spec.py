"""`vivit_jax.checkpoints.input_spec`: a checkpoint's "input" block, read key by key."""

import pytest

from vivit_jax.checkpoints import input_spec
from vivit_jax.common.constants import IMAGENET_MEAN, IMAGENET_STD


def test_input_spec_from_converter_source_with_defaults():
  spec = input_spec.resolve_input_spec({"source": {"num_frames": 32, "image_size": [224, 224]}})
  assert spec.frame_stride is None and spec.resize_short_side == 256
  assert spec.mean == IMAGENET_MEAN and spec.std == IMAGENET_STD
  assert spec.stride_for(1000) == 2 and spec.stride_for(40) == 1  # 63 frames for stride 2.
  with pytest.raises(ValueError, match="--num-frames"):
    input_spec.resolve_input_spec({"model": {}}, where="ck/config.json")


def test_input_block_written_by_training_reads_back_as_the_same_spec():
  written = input_spec.InputSpec(16, 2, (224, 224), 256, (0.5,) * 3, (0.25,) * 3).to_json()
  spec = input_spec.resolve_input_spec({"input": written})
  assert spec.to_json() == written
  assert input_spec.video_shape_of({"input": written}) == (16, 224, 224, 3)
