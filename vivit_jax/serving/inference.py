"""Classifying decoded video with a model checkpoint: input spec, frame
sampling, preprocessing and a jitted `classify(clips) -> probs`.

    classifier = load_classifier("ckpt_dir")
    spec = classifier.spec
    indices = eval_views.view_indices(video_io.probe(path).num_frames, spec.num_frames,
                                      spec.stride_for())[0]     # (T,) centre view
    frames = video_io.read_frames(path, indices)        # (T, H, W, 3) uint8
    clip = classifier.preprocess(frames)                # (T, h, w, 3) float32
    probs = classifier.classify(clip[None])             # (1, num_classes)

The input spec (`InputSpec`) is the checkpoint's, with the CLI flags
overriding it key by key (`vivit_jax.checkpoints.input_spec`). Preprocessing equals the training pipeline's eval path:
bilinear resize (half-pixel centres, no antialiasing) of the short side, a
centre crop, then `(pixels / 255 - mean) / std`.
"""

import functools
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from vivit_jax import checkpoints
from vivit_jax.checkpoints.input_spec import InputSpec, resolve_input_spec
from vivit_jax.models import registry


def resize_geometry(height: int, width: int, spec: InputSpec):
  """`(scale_y, scale_x, y0, x0)`: the resize factors for frames of
  `height x width` and the centre crop's top-left corner in resized pixels.

  The short side becomes `resize_short_side` (sizes rounded, never below it),
  enlarged further when the crop would not fit (non-square image_size)."""
  crop_h, crop_w = spec.image_size
  scale = max(spec.resize_short_side / min(height, width), crop_h / height, crop_w / width)
  new_h = max(int(round(height * scale)), spec.resize_short_side, crop_h)
  new_w = max(int(round(width * scale)), spec.resize_short_side, crop_w)
  max_y, max_x = new_h - crop_h, new_w - crop_w
  if max_x >= max_y:
    y0, x0 = max_y // 2, int(np.round(0.5 * max_x))
  else:
    y0, x0 = int(np.round(0.5 * max_y)), max_x // 2
  return new_h / height, new_w / width, y0, x0


@functools.partial(jax.jit, static_argnums=(1,))
def _preprocess(frames, spec: InputSpec):
  t, height, width, channels = frames.shape
  scale_y, scale_x, y0, x0 = resize_geometry(height, width, spec)
  frames = frames.astype(jnp.float32)
  # Resize and crop in one pass: output pixel o samples resized pixel o + y0.
  out = jax.image.scale_and_translate(
      frames, (t, *spec.image_size, channels), (1, 2),
      jnp.array([scale_y, scale_x], jnp.float32), jnp.array([-y0, -x0], jnp.float32),
      method="linear", antialias=False)
  mean = jnp.array(spec.mean, jnp.float32) * 255.0
  std = jnp.array(spec.std, jnp.float32) * 255.0
  return (out - mean) / std


def preprocess(frames: np.ndarray, spec: InputSpec) -> np.ndarray:
  """`(T, H, W, 3)` uint8 frames -> `(T, h, w, 3)` float32 model input."""
  frames = np.asarray(frames)
  if frames.ndim != 4 or frames.shape[-1] != 3:
    raise ValueError(f"frames must be (T, H, W, 3), got {frames.shape}")
  return np.asarray(_preprocess(frames, spec))


def head_names(class_splits: Sequence[int]) -> List[str]:
  """`["head_0", "head_1", ...]`, as evaluation reports name the heads."""
  return [f"head_{h}" for h in range(len(class_splits))]


def head_softmax(logits, class_splits: Tuple[int, ...]):
  """`(B, num_classes)` logits -> float32 probabilities: one softmax, or one
  per head of `class_splits` side by side (every head's block sums to 1)."""
  logits = jnp.asarray(logits, jnp.float32)
  if not class_splits:
    return jax.nn.softmax(logits, axis=-1)
  bounds = np.cumsum(class_splits)[:-1].tolist()
  return jnp.concatenate([jax.nn.softmax(part, axis=-1)
                          for part in jnp.split(logits, bounds, axis=-1)], axis=-1)


class Classifier:
  """A jitted classifier with its input spec and class names.

  A model with `class_splits` (several heads, e.g. verb + noun) gets each
  head's softmax side by side (every head's block sums to 1) and is ranked
  per head (`head_top_k`); its labels are the heads' class names side by side.
  Another runtime subclasses it and replaces `__init__` and `classify`
  (`serving.onnx_backend.OnnxClassifier`); the rest is shared.

  Attributes:
    model, params: the Flax module and its parameters (on device).
    spec: the `InputSpec`.
    labels: `num_classes` class names.
    class_splits: the heads' class counts; () = one head.
  """

  def __init__(self, model, params, spec: InputSpec, labels: Sequence[str]):
    self.model, self.spec, self.labels = model, spec, list(labels)
    self.params = jax.device_put(params)
    self.class_splits = tuple(int(c) for c in getattr(model, "class_splits", ()) or ())
    splits = self.class_splits
    self._probs = jax.jit(lambda p, clips: head_softmax(model.apply({"params": p}, clips),
                                                        splits))

  @property
  def heads(self) -> List[Tuple[str, int, int]]:
    """`[(name, start, size)]`: each head's slice of the scores (one head: all)."""
    if not self.class_splits:
      return [("", 0, self.num_classes)]
    starts = np.cumsum((0,) + self.class_splits[:-1]).tolist()
    return list(zip(head_names(self.class_splits), starts, self.class_splits))

  @property
  def num_classes(self) -> int:
    return len(self.labels)

  def preprocess(self, frames: np.ndarray) -> np.ndarray:
    """`(T, H, W, 3)` uint8 -> `(T, h, w, 3)` float32 (see `preprocess`)."""
    return preprocess(frames, self.spec)

  def classify(self, clips) -> np.ndarray:
    """`(B, T, h, w, 3)` float32 clips -> `(B, num_classes)` float32 softmax."""
    return np.asarray(self._probs(self.params, clips))

  def warmup(self, batch_size: int = 1) -> None:
    """Compiles `classify` for `batch_size` clips (blocks until done)."""
    h, w = self.spec.image_size
    self.classify(np.zeros((batch_size, self.spec.num_frames, h, w, 3), np.float32))

  def top_k(self, probs: np.ndarray, k: int) -> List[Dict[str, Any]]:
    """`[{"label", "index", "probability"}]` of the k most likely classes of
    one `(num_classes,)` probability vector, most likely first."""
    order = np.argsort(-np.asarray(probs), kind="stable")[:max(k, 1)]
    return [{"label": self.labels[i], "index": int(i), "probability": float(probs[i])}
            for i in order]

  def head_top_k(self, probs: np.ndarray, k: int) -> List[Dict[str, Any]]:
    """`[{"head", "top_k": [{"label", "index", "probability"}]}]`: `top_k`
    within each head's slice of one `(num_classes,)` vector (`index` counts
    within the head). One head: one entry with `head` "".
    """
    probs = np.asarray(probs)
    out = []
    for name, start, size in self.heads:
      part = probs[start:start + size]
      order = np.argsort(-part, kind="stable")[:max(k, 1)]
      out.append({"head": name, "top_k": [
          {"label": self.labels[start + i], "index": int(i), "probability": float(part[i])}
          for i in order]})
    return out


def load_classifier(checkpoint_dir: str, labels_file: Optional[str] = None,
                    dtype: Optional[str] = None, attention_impl: Optional[str] = None,
                    **input_overrides) -> Classifier:
  """A `Classifier` from a model checkpoint directory (`checkpoints`).

  Args:
    checkpoint_dir: holds `config.json` and `params/`.
    labels_file: class names, one per line (several heads: every head's, in
      head order); else the checkpoint's `labels`, else `class_<i>` (per head).
    dtype, attention_impl: override the model config's computation dtype
      ("float32" | "bfloat16" | "float16") and attention kernel ("xla" |
      "cudnn"; cudnn needs a GPU and a 16-bit dtype).
    **input_overrides: `input_spec.INPUT_KEYS` overriding the checkpoint's input spec.
  Raises:
    FileNotFoundError / ValueError / checkpoints.ParamMismatchError with a
    message naming the checkpoint.
  """
  config = checkpoints.load_model_config(checkpoint_dir)
  where = os.path.join(checkpoint_dir, checkpoints.CONFIG_FILE)
  model_config = dict(config["model"])
  if registry.objective_of(model_config) != "classification":
    raise ValueError(f"{where}: model.name={model_config.get('name')!r} is not a classifier "
                     "(needs a classification model such as 'vivit')")
  num_classes = int(model_config.get("num_classes", 400))
  if num_classes < 1:
    raise ValueError(f"{where}: model.num_classes={num_classes}, a feature extractor, "
                     "not a classifier")
  spec = resolve_input_spec(config, where, **input_overrides)
  model, params, _ = checkpoints.load_model(
      checkpoint_dir, (spec.num_frames, *spec.image_size, 3), dtype=dtype,
      attention_impl=attention_impl)
  labels = class_names(config.get("labels"), model_config, labels_file, where)
  return Classifier(model, params, spec, labels)


def class_names(stored: Optional[Sequence[str]], model_config: Dict[str, Any],
                labels_file: Optional[str], where: str) -> List[str]:
  """The classes' names: `labels_file` (one per line), else `stored` (a
  checkpoint's or export's `labels`), else `class_<i>` (per head). ValueError
  naming `where` when `stored` does not count `model.num_classes`."""
  num_classes = int(model_config.get("num_classes", 400))
  if labels_file is not None:
    return checkpoints.read_labels(labels_file, num_classes)
  if stored:
    labels = [str(name) for name in stored]
    if len(labels) != num_classes:
      raise ValueError(f"{where}: {len(labels)} labels for {num_classes} classes")
    return labels
  if model_config.get("class_splits"):
    return [f"class_{i}" for c in model_config["class_splits"] for i in range(int(c))]
  return [f"class_{i}" for i in range(num_classes)]
