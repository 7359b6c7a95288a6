"""Several classification heads on one ViViT (Epic-Kitchens verb + noun).

A model with `class_splits=(C_0, C_1, ...)` emits `(B, sum C_h)` logits, the
heads side by side (`vivit.split_logits`). A video's label is one int, the
heads' labels in mixed radix with head 0 most significant:

    label = ((y_0 * C_1 + y_1) * C_2 + y_2) ...   in [0, prod C_h)

so for Epic-Kitchens-100 `class_splits=(97, 300)`, `label = verb * 300 + noun`,
`data.num_classes = 29100`, and the existing one-int-per-video pipelines and
TFRecords carry it unchanged. Action accuracy = every head right.

Loss: the sum over heads of each head's softmax cross-entropy against its
label-smoothed, Mixup/CutMix-mixed one-hot targets (one mixing coefficient for
all heads). Same spec (`specs.ObjectiveSpec`) as `objectives.py`.
"""

from typing import Dict, List, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from vivit_jax.models.vivit import split_logits
from vivit_jax.train import mixing

DROPOUT, MIX = 0, 1  # The step key's fold-ins, as in objectives.py.


def encode_labels(head_labels: Sequence, class_splits: Sequence[int]):
  """Per-head labels `[(B,), ...]` -> the combined `(B,)` label (module docstring)."""
  label = head_labels[0]
  for y, c in zip(head_labels[1:], class_splits[1:]):
    label = label * c + y
  return label


def decode_labels(labels, class_splits: Sequence[int]) -> Tuple:
  """The combined `(B,)` label -> one `(B,)` label per head, head 0 first."""
  heads = []
  for c in reversed(class_splits[1:]):
    heads.append(labels % c)
    labels = labels // c
  heads.append(labels)
  return tuple(reversed(heads))


def head_log_probs(logits, class_splits: Sequence[int]):
  """`(B, sum C_h)` logits -> per-head log-softmax, side by side, float32.

  The softmax over the whole row of these is every head's probabilities
  divided by the number of heads, so view averaging of it keeps each head's
  probabilities intact (`video_metrics`).
  """
  parts = split_logits(jnp.asarray(logits, jnp.float32), tuple(class_splits))
  return jnp.concatenate([jax.nn.log_softmax(p, axis=-1) for p in parts], axis=-1)


def _per_head(logits, labels, class_splits):
  """`(loss (B,) summed over heads, correct (H, B) bool)` with one-hot targets."""
  logp = split_logits(head_log_probs(logits, class_splits), tuple(class_splits))
  ys = decode_labels(labels, class_splits)
  loss = sum(-jnp.take_along_axis(lp, y[:, None], -1)[:, 0] for lp, y in zip(logp, ys))
  correct = jnp.stack([jnp.argmax(lp, -1) == y for lp, y in zip(logp, ys)])
  return loss, correct


def make_loss_fn(tc, model):
  """`loss_fn(params, batch, rng) -> (loss, metrics)`; metrics: `accuracy`
  (action: all heads right, un-mixed labels) and `head_<h>_accuracy`.
  `tc`: the `specs.ObjectiveSpec`."""
  splits = tuple(model.class_splits)

  def loss_fn(params, batch, rng):
    video, labels = batch["video"], batch["label"]
    ys = decode_labels(labels, splits)
    targets = jnp.concatenate(
        [mixing.one_hot_targets(y, c, float(tc.label_smoothing)) for y, c in zip(ys, splits)],
        axis=-1)
    video, targets, _ = mixing.mix_batch(
        jax.random.fold_in(rng, MIX), video, targets, mixup_alpha=float(tc.mixup_alpha),
        cutmix_alpha=float(tc.cutmix_alpha), mix_prob=float(tc.mix_prob))
    logits = model.apply({"params": params}, video, train=True,
                         rngs={"dropout": jax.random.fold_in(rng, DROPOUT)})
    logp = head_log_probs(logits, splits)
    loss = jnp.mean(-jnp.sum(targets * logp, axis=-1))
    _, correct = _per_head(logits, labels, splits)
    metrics = {"accuracy": jnp.mean(jnp.all(correct, 0).astype(jnp.float32))}
    for h in range(len(splits)):
      metrics[f"head_{h}_accuracy"] = jnp.mean(correct[h].astype(jnp.float32))
    return loss, metrics

  return loss_fn


def make_eval_fn(spec, model):
  """`eval_fn(params, batch, rng) -> metrics`, the keys of a one-head eval:
  `loss` (summed over heads), `accuracy` (action), `num_examples`, and
  `logits` = `head_log_probs` `(B, sum C_h)`; padding-aware (`batch["mask"]`)."""
  del spec
  splits = tuple(model.class_splits)

  def eval_fn(params, batch, rng):
    del rng
    n = batch["video"].shape[0]
    w = (jnp.asarray(batch["mask"], jnp.float32).reshape(n) if "mask" in batch
         else jnp.ones((n,), jnp.float32))
    logits = model.apply({"params": params}, batch["video"], train=False)
    loss, correct = _per_head(logits, batch["label"], splits)
    action = jnp.all(correct, 0).astype(jnp.float32)
    total = jnp.maximum(jnp.sum(w), 1.0)
    return {"loss": jnp.sum(loss * w) / total, "accuracy": jnp.sum(action * w) / total,
            "num_examples": jnp.sum(w), "logits": head_log_probs(logits, splits)}

  return eval_fn


def head_names(class_splits: Sequence[int]) -> Tuple[str, ...]:
  """`("head_0", "head_1", ...)`: the names metric keys and reports use."""
  return tuple(f"head_{h}" for h in range(len(class_splits)))


def head_class_names(names: Optional[Sequence[str]], class_splits: Sequence[int]
                     ) -> List[Optional[List[str]]]:
  """Per-head class names from `sum C_h` names (the heads' names side by side,
  what a multi-head model checkpoint's `labels` hold); None per head otherwise."""
  if names is None or len(names) != sum(class_splits):
    return [None] * len(class_splits)
  bounds = np.cumsum((0,) + tuple(class_splits))
  return [list(names[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


def split_scores(scores: np.ndarray, class_splits: Sequence[int]) -> Tuple[np.ndarray, ...]:
  """`(N, sum C_h)` NumPy scores -> one `(N, C_h)` array per head."""
  return tuple(np.split(np.asarray(scores), np.cumsum(class_splits)[:-1], axis=-1))


def head_softmax(logits: np.ndarray, class_splits: Sequence[int]) -> np.ndarray:
  """`(N, sum C_h)` logits (or per-head log-probabilities) -> each head's
  softmax probabilities side by side, float64; every head's block sums to 1."""
  parts = []
  for part in split_scores(np.asarray(logits, np.float64), class_splits):
    e = np.exp(part - part.max(axis=-1, keepdims=True))
    parts.append(e / e.sum(axis=-1, keepdims=True))
  return np.concatenate(parts, axis=-1)


def video_metrics(scores: np.ndarray, labels: np.ndarray,
                  class_splits: Sequence[int]) -> Dict[str, float]:
  """Video-level accuracies from view-averaged per-head probabilities.

  Args:
    scores: `(N, sum C_h)`, each head's probabilities averaged over a
      video's views (any positive per-head scale, e.g. the softmax of
      `head_log_probs` rows).
    labels: `(N,)` combined labels.
  Returns:
    `eval/top1` (action: every head's argmax right) and `eval/head_<h>_top1`.
  """
  scores = np.asarray(scores)
  bounds = np.cumsum(class_splits)[:-1]
  heads = decode_labels(np.asarray(labels, np.int64), class_splits)
  correct = np.stack([np.argmax(s, -1) == y
                      for s, y in zip(np.split(scores, bounds, axis=-1), heads)])
  out = {"eval/top1": float(np.mean(np.all(correct, 0)))}
  for h in range(len(class_splits)):
    out[f"eval/head_{h}_top1"] = float(np.mean(correct[h]))
  return out
