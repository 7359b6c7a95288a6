"""The `"input"` block of a model checkpoint's config.json: what clips its model takes.

    "input": {"num_frames": 16, "frame_stride": 2, "image_size": [224, 224],
              "resize_short_side": 256, "mean": [0.485, 0.456, 0.406],
              "std": [0.229, 0.224, 0.225]}

Training writes it (`InputSpec(...).to_json()`, from the data config's eval
path); the Hugging Face / Scenic converters write a `"source"` block with
`num_frames` and `image_size` instead. `resolve_input_spec` reads the spec,
key by key, from explicit overrides (the serving CLI flags), else `"input"`,
else `"source"` (`num_frames`, `image_size`), else the defaults: stride 2 (1
for videos shorter than a stride-2 clip), short side resized to
`round(256 / 224 * max(h, w))`, ImageNet mean / std. `video_shape_of` is the
`(T, H, W, C)` of one clip (C from `"source"`, default 3).
"""

import dataclasses
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np

from vivit_jax.common.constants import IMAGENET_MEAN, IMAGENET_STD
from vivit_jax.data.eval_views import clip_span

DEFAULT_STRIDE = 2
INPUT_KEYS = ("num_frames", "frame_stride", "image_size", "resize_short_side", "mean", "std")


@dataclasses.dataclass(frozen=True)
class InputSpec:
  """What the model takes and how frames become it.

  Attributes:
    num_frames: T, frames per clip.
    frame_stride: source frames between sampled frames; None picks per video
      (`stride_for`): DEFAULT_STRIDE, or 1 when the video is too short.
    image_size: `(h, w)` of the model input in pixels.
    resize_short_side: short side (pixels) frames are resized to before the
      centre crop.
    mean, std: per-channel RGB normalisation on the [0, 1] pixel scale.
  """
  num_frames: int
  frame_stride: Optional[int]
  image_size: Tuple[int, int]
  resize_short_side: int
  mean: Tuple[float, float, float] = IMAGENET_MEAN
  std: Tuple[float, float, float] = IMAGENET_STD

  def stride_for(self, num_source_frames: Optional[int] = None) -> int:
    """The stride for a video of `num_source_frames` (None: unbounded)."""
    if self.frame_stride is not None:
      return self.frame_stride
    if num_source_frames is not None and num_source_frames < clip_span(
        self.num_frames, DEFAULT_STRIDE):
      return 1
    return DEFAULT_STRIDE

  def to_json(self) -> Dict[str, Any]:
    return {"num_frames": self.num_frames, "frame_stride": self.frame_stride,
            "image_size": list(self.image_size), "resize_short_side": self.resize_short_side,
            "mean": list(self.mean), "std": list(self.std)}


def _pair(value) -> Tuple[int, int]:
  if isinstance(value, (int, np.integer)):
    return int(value), int(value)
  h, w = value
  return int(h), int(w)


def resolve_input_spec(config: Mapping[str, Any], where: str = "config.json",
                       **overrides) -> InputSpec:
  """The `InputSpec` of a checkpoint config (see module docstring).

  `overrides` are `INPUT_KEYS`; None values are ignored. Raises ValueError
  naming `where` when neither the config nor the overrides give
  num_frames / image_size, or on an unknown key.
  """
  unknown = sorted(set(overrides) - set(INPUT_KEYS))
  if unknown:
    raise ValueError(f"unknown input spec key(s) {unknown}; valid: {list(INPUT_KEYS)}")
  block = dict(config.get("input") or {})
  unknown = sorted(set(block) - set(INPUT_KEYS))
  if unknown:
    raise ValueError(f"{where}: unknown key(s) {unknown} in \"input\"; valid: {list(INPUT_KEYS)}")
  source = config.get("source") or {}
  value = {}
  for key in INPUT_KEYS:
    for layer in (overrides, block, source if key in ("num_frames", "image_size") else {}):
      if layer.get(key) is not None:
        value[key] = layer[key]
        break
  for key, flag in (("num_frames", "--num-frames"), ("image_size", "--image-size")):
    if key not in value:
      raise ValueError(f"{where} says no {key} (neither \"input\" nor \"source\"); pass {flag}")
  image_size = _pair(value["image_size"])
  short_side = value.get("resize_short_side") or int(round(max(image_size) * 256 / 224))
  spec = InputSpec(
      num_frames=int(value["num_frames"]),
      frame_stride=None if value.get("frame_stride") is None else int(value["frame_stride"]),
      image_size=image_size, resize_short_side=int(short_side),
      mean=tuple(float(v) for v in value.get("mean", IMAGENET_MEAN)),
      std=tuple(float(v) for v in value.get("std", IMAGENET_STD)))
  if spec.num_frames < 1 or min(spec.image_size) < 1 or spec.resize_short_side < 1:
    raise ValueError(f"{where}: bad input spec {spec.to_json()}")
  if (spec.frame_stride is not None and spec.frame_stride < 1) or len(spec.mean) != 3 \
      or len(spec.std) != 3 or min(spec.std) <= 0:
    raise ValueError(f"{where}: bad input spec {spec.to_json()}")
  return spec


def video_shape_of(config: Mapping[str, Any], where: str = "config.json") -> Tuple[int, ...]:
  """`(T, H, W, C)` a checkpoint's model takes, from its `"input"`, else `"source"` block."""
  source = config.get("source") or {}
  block = dict(source, **{k: v for k, v in (config.get("input") or {}).items()
                          if v is not None})
  if block.get("num_frames") is None or block.get("image_size") is None:
    raise ValueError(f"{where} says no num_frames / image_size (neither \"input\" nor "
                     "\"source\"); pass the video shape")
  size = block["image_size"]
  h, w = (size, size) if isinstance(size, (int, np.integer)) else size
  return (int(block["num_frames"]), int(h), int(w), int(source.get("num_channels", 3)))
