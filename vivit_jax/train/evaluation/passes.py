"""Evaluation passes: multi-view video accuracy, reconstruction loss, the PNG.

An eval pass reads one epoch of the eval split: every process reads its own
shard (`video (B_local, T, H, W, C)`, `label`, `video_index`, `view_index`,
`valid`), the batch is assembled into global arrays, and per-example logits
come back to every host (`process_allgather`), so all processes compute the
same numbers; only process 0 writes them.

Classification metrics (keys of the returned dict):
  eval/loss        cross-entropy over the real clips (views).
  eval/clip_top1   accuracy of single views.
  eval/top1, eval/top5
                   video-level accuracy: softmax probabilities averaged over
                   each video's views (`video_index`), then ranked.
  eval/mean_class_accuracy
                   video-level top-1 per true class, averaged over the
                   classes present (robust to class imbalance).
  eval/num_videos, eval/num_clips
A model with `class_splits` (several heads, `train/multihead.py`; labels combine
the heads') averages each head's softmax over the views on its own, so
eval/top1 and eval/clip_top1 are action accuracy (every head right) and
each head h adds eval/head_<h>_top1, _top5, _mean_class_accuracy and
_clip_top1; it has no eval/top5 or eval/mean_class_accuracy of its own.
Pretraining metrics: eval/loss (reconstruction MSE over hidden tubelets of the
real clips), eval/num_clips, and eval/<name> for the pixel-space metrics of
`vivit_jax.models.forecast_metrics` (pixel_mse, mean_baseline_pixel_mse;
psnr, ssim and their copy_last_ / patch_mean_ baselines for future masking).

`shuffle_frames=True` permutes the frames of every clip in time (one fixed
permutation per batch, drawn from `seed` and the batch index): the control
that shows whether a model uses motion.
"""

import dataclasses
from typing import Callable, Dict, Iterable, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from vivit_jax.models import videomae
from vivit_jax.train import multihead, partitioning
from vivit_jax.train.distributed import make_global_batch

STEP_KEYS = ("video", "label", "mask")  # what the jitted eval step receives


def shuffle_time(video: np.ndarray, seed: int) -> np.ndarray:
  """`(B, T, H, W, C)` with the T axis permuted (same permutation for all clips)."""
  order = np.random.default_rng(seed).permutation(video.shape[1])
  return video[:, order]


def step_batch(local_batch: Dict[str, np.ndarray], mesh) -> Dict[str, jax.Array]:
  """The global arrays an eval step reads; `valid` becomes the weight `mask`."""
  batch = {"video": local_batch["video"], "label": local_batch["label"]}
  valid = local_batch.get("valid")
  batch["mask"] = (np.ones(len(local_batch["label"]), np.float32) if valid is None
                   else np.asarray(valid, np.float32))
  return make_global_batch(batch, mesh)


def host_rows(x) -> np.ndarray:
  """All rows, on every host, of a batch-sharded global array or of each
  process's `(B_local, ...)` host array (concatenated in process order)."""
  if jax.process_count() == 1:
    return np.asarray(x)
  return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def top_k_correct(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
  """`(N,)` bool: label among the k highest of `scores (N, C)`."""
  k = min(k, scores.shape[-1])
  top = np.argsort(-scores, axis=-1, kind="stable")[:, :k]
  return np.any(top == labels[:, None], axis=-1)


def softmax(logits: np.ndarray) -> np.ndarray:
  """Softmax over the last axis, float64."""
  z = np.asarray(logits, np.float64)
  z = z - z.max(axis=-1, keepdims=True)
  e = np.exp(z)
  return e / e.sum(axis=-1, keepdims=True)


def average_views(probs: np.ndarray, video_ids: np.ndarray, labels: np.ndarray
                  ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Per-video mean of view probabilities.

  Args:
    probs: `(N, C)` per-view probabilities.
    video_ids: `(N,)` or `(N, k)` ints naming each view's video.
    labels: `(N,)` int labels (equal for all views of a video).

  Returns:
    `(ids (V, ...), scores (V, C), labels (V,))`, videos in sorted id order.
  """
  video_ids = np.asarray(video_ids).reshape(len(probs), -1)
  ids, inverse = np.unique(video_ids, axis=0, return_inverse=True)
  inverse = inverse.reshape(-1)
  sums = np.zeros((len(ids), probs.shape[-1]), np.float64)
  np.add.at(sums, inverse, probs)
  counts = np.bincount(inverse, minlength=len(ids))[:, None]
  video_labels = np.zeros(len(ids), np.int64)
  video_labels[inverse] = labels
  return ids, sums / counts, video_labels


def confusion_matrix(predictions: np.ndarray, labels: np.ndarray,
                     num_classes: int) -> np.ndarray:
  """`(C, C)` int64 counts: row = true class, column = predicted class."""
  matrix = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(matrix, (np.asarray(labels, np.int64), np.asarray(predictions, np.int64)), 1)
  return matrix


def per_class_accuracy(matrix: np.ndarray) -> np.ndarray:
  """`(C,)` recall of each class from a confusion matrix; NaN for absent classes."""
  totals = matrix.sum(axis=1).astype(np.float64)
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(totals > 0, np.diag(matrix) / np.maximum(totals, 1), np.nan)


def mean_class_accuracy(matrix: np.ndarray) -> float:
  """Mean of `per_class_accuracy` over the classes that occur."""
  accuracy = per_class_accuracy(matrix)
  present = ~np.isnan(accuracy)
  return float(np.mean(accuracy[present])) if present.any() else float("nan")


@dataclasses.dataclass
class ClassifierPass:
  """What one eval pass over the eval split collected (identical on every host).

  Attributes:
    scores: `(V, C)` float64, each video's softmax probabilities averaged
      over its views; with `class_splits`, `(V, sum C_h)`: each head's
      softmax averaged on its own, the heads side by side.
    labels: `(V,)` int64 video labels (combined over the heads).
    loss_sum: summed cross-entropy over the real clips (summed over heads).
    num_clips: real (valid) clips = views seen.
    clip_correct: real clips whose own argmax was right (every head's).
    class_splits: the heads' class counts; () = one head.
    clip_head_correct: `(H,)` real clips each head's own argmax got right.
  """
  scores: np.ndarray
  labels: np.ndarray
  loss_sum: float
  num_clips: float
  clip_correct: float
  class_splits: Tuple[int, ...] = ()
  clip_head_correct: Optional[np.ndarray] = None

  @property
  def num_classes(self) -> int:
    return self.scores.shape[-1]

  @property
  def head_names(self) -> Tuple[str, ...]:
    """`("head_0", ...)` with `class_splits`, else ()."""
    return multihead.head_names(self.class_splits) if self.class_splits else ()

  def head(self, index: int) -> Tuple[np.ndarray, np.ndarray]:
    """`(scores (V, C_h), labels (V,))` of head `index`."""
    scores = multihead.split_scores(self.scores, self.class_splits)[index]
    return scores, multihead.decode_labels(self.labels, self.class_splits)[index]

  def confusion(self, head: Optional[int] = None) -> np.ndarray:
    """`(C, C)` counts; with `class_splits`, head `head`'s `(C_h, C_h)`."""
    if not self.class_splits:
      return confusion_matrix(np.argmax(self.scores, -1), self.labels, self.num_classes)
    if head is None:
      raise ValueError(f"a model with class_splits={self.class_splits} has one confusion "
                       "matrix per head: pass head=<index>")
    scores, labels = self.head(head)
    return confusion_matrix(np.argmax(scores, -1), labels, scores.shape[-1])

  def metrics(self) -> Dict[str, float]:
    """The `eval/*` scalars (see module docstring)."""
    clips = max(self.num_clips, 1.0)
    if not self.class_splits:
      return {
          "eval/loss": self.loss_sum / clips,
          "eval/clip_top1": self.clip_correct / clips,
          "eval/top1": float(np.mean(top_k_correct(self.scores, self.labels, 1))),
          "eval/top5": float(np.mean(top_k_correct(self.scores, self.labels, 5))),
          "eval/mean_class_accuracy": mean_class_accuracy(self.confusion()),
          "eval/num_videos": float(len(self.labels)),
          "eval/num_clips": self.num_clips,
      }
    out = {"eval/loss": self.loss_sum / clips, "eval/clip_top1": self.clip_correct / clips}
    out.update(multihead.video_metrics(self.scores, self.labels, self.class_splits))
    for h, name in enumerate(self.head_names):
      scores, labels = self.head(h)
      out[f"eval/{name}_top5"] = float(np.mean(top_k_correct(scores, labels, 5)))
      out[f"eval/{name}_mean_class_accuracy"] = mean_class_accuracy(self.confusion(h))
      out[f"eval/{name}_clip_top1"] = float(self.clip_head_correct[h]) / clips
    out.update({"eval/num_videos": float(len(self.labels)), "eval/num_clips": self.num_clips})
    return out


def _clip_correct(logits: np.ndarray, labels: np.ndarray, valid: np.ndarray,
                  class_splits: Sequence[int]) -> Tuple[float, np.ndarray]:
  """`(clips every head got right, (H,) clips each head got right)` among the valid."""
  heads = multihead.decode_labels(labels, class_splits)
  correct = np.stack([(np.argmax(s, -1) == y) & valid for s, y in
                      zip(multihead.split_scores(logits, class_splits), heads)])
  return float(np.sum(np.all(correct, 0))), correct.sum(axis=1).astype(np.float64)


def classifier_pass(eval_step: Callable, state, batches: Iterable[Dict[str, np.ndarray]],
                    mesh, shuffle_frames: bool = False, seed: int = 0,
                    max_batches: int = 0, class_splits: Sequence[int] = ()
                    ) -> ClassifierPass:
  """Runs `eval_step` over `batches`, gathers every view, averages per video.

  The classification pass of `evaluator.Evaluator` (the training loop's
  periodic eval, `mode=eval` and `vivit-evaluate`). With `class_splits` the
  step's `logits (B, sum C_h)` are per-head log-probabilities
  (`multihead.make_eval_fn`); each head's softmax is averaged on its own.
  """
  splits = tuple(int(c) for c in class_splits)
  probs, labels, ids = [], [], []
  loss_sum = clip_correct = clips = 0.0
  head_correct = np.zeros(len(splits))
  for index, local in enumerate(batches):
    if max_batches and index >= max_batches:
      break
    if shuffle_frames:
      local = dict(local, video=shuffle_time(local["video"], seed + index))
    metrics = eval_step(state, step_batch(local, mesh))
    logits = host_rows(metrics["logits"])
    batch_labels = host_rows(local["label"]).astype(np.int64)
    valid = host_rows(local.get("valid", np.ones(len(local["label"])))).astype(bool)
    local_ids = local.get("video_index", np.arange(len(local["label"])) + 10**6 * index)
    # Keyed by (process, video_index): each process numbers its own shard.
    batch_ids = host_rows(np.stack([np.full(len(local_ids), jax.process_index()),
                                  np.asarray(local_ids)], 1))
    n = float(np.asarray(metrics["num_examples"]))
    loss_sum += float(np.asarray(metrics["loss"])) * n
    clips += n
    if splits:
      action, per_head = _clip_correct(logits, batch_labels, valid, splits)
      clip_correct += action
      head_correct += per_head
      probs.append(multihead.head_softmax(logits[valid], splits))
    else:
      clip_correct += float(np.sum((np.argmax(logits, -1) == batch_labels) & valid))
      probs.append(softmax(logits[valid]))
    labels.append(batch_labels[valid])
    ids.append(batch_ids[valid])
  if not probs or not sum(len(p) for p in probs):
    raise ValueError("the eval split yielded no valid clips")
  _, scores, video_labels = average_views(np.concatenate(probs), np.concatenate(ids),
                                          np.concatenate(labels))
  if splits:
    return ClassifierPass(scores, video_labels, loss_sum, clips, clip_correct, splits,
                          head_correct)
  return ClassifierPass(scores, video_labels, loss_sum, clips, clip_correct)


def masked_frames(video: np.ndarray, mask: np.ndarray, patch_size, tubelet_size: int,
                  fill: float = 0.5) -> np.ndarray:
  """`(B, T, H, W, C)` with the hidden tubelets (`mask (B, N)` True) set to `fill`."""
  patches = np.array(videomae.patchify(jnp.asarray(video), patch_size, tubelet_size))
  patches[np.asarray(mask, bool)] = fill
  return np.asarray(videomae.unpatchify(jnp.asarray(patches), video.shape[1:], patch_size,
                                        tubelet_size))


def _unnormalise(video: np.ndarray, mean, std) -> np.ndarray:
  video = np.asarray(video, np.float32)
  if mean is None:
    return video
  return video * np.asarray(std, np.float32) + np.asarray(mean, np.float32)


def pretrain_pass(eval_step: Callable, state, model, batches: Iterable[Dict[str, np.ndarray]],
                  mesh, pixel_mean, pixel_std, num_images: int = 2, max_batches: int = 0
                  ) -> Tuple[Dict[str, float], Optional[Tuple[np.ndarray, ...]]]:
  """Reconstruction loss over the eval split, and frames for a PNG.

  Args:
    eval_step: `make_eval_step(..., return_reconstruction=True)` when
      `num_images` > 0: the first batch's `reconstruction` and token `mask`
      (the step's own) make the images.
    model: the masked autoencoder (its patch and tubelet sizes).
    pixel_mean, pixel_std: the input normalisation (None: raw pixels).

  Returns:
    `(metrics, images)`: images is `(original, masked, reconstructed)`, each
    `(num_images, T, H, W, C)` float32 in [0, 1] pixel units, or None.
  """
  sums: Dict[str, float] = {}
  clips = 0.0
  images = None
  for index, local in enumerate(batches):
    if max_batches and index >= max_batches:
      break
    metrics = eval_step(state, step_batch(local, mesh))
    n = float(np.asarray(metrics["num_examples"]))
    for name, value in metrics.items():
      if name not in ("num_examples", "reconstruction", "mask"):
        sums[name] = sums.get(name, 0.0) + float(np.asarray(value)) * n
    clips += n
    if index == 0 and num_images and "reconstruction" in metrics:
      images = _reconstruction_images(model, local, metrics, mesh, pixel_mean, pixel_std,
                                      num_images)
  if clips == 0:
    raise ValueError("the eval split yielded no valid clips")
  averages = {f"eval/{name}": total / clips for name, total in sums.items()}
  return dict(averages, **{"eval/num_clips": clips}), images


def _reconstruction_images(model, local, metrics, mesh, pixel_mean, pixel_std, num_images):
  """The first `num_images` global rows as (original, masked, reconstructed)."""
  n = min(num_images, len(local["video"]))
  first_rows = jax.jit(lambda r: r[:n], out_shardings=partitioning.replicated(mesh))
  reconstructed = np.asarray(first_rows(metrics["reconstruction"]).addressable_data(0))
  mask = np.asarray(first_rows(metrics["mask"]).addressable_data(0))
  original = (local["video"][:n] / 255.0 if local["video"].dtype == np.uint8  # data.dtype uint8
              else _unnormalise(local["video"][:n], pixel_mean, pixel_std))
  hidden = masked_frames(original, mask, model.patch_size, model.tubelet_size)
  return (np.clip(original, 0, 1), np.clip(hidden, 0, 1), np.clip(reconstructed, 0, 1))
