"""`VideoIterator`: host-local numpy batches with a small, JSON-able position.

State `{"next_index": g, "next_clip": k, "batches": n, "seed": s, "train": b,
"skipped": {kind: count}}` says the next batch starts at clip k of train
element (or eval video) g; `set_state` rebuilds the pipeline from there,
decoding nothing twice. Rows of videos that yield no clip are missing from
the stream; each gap in "position" is one skip, counted by the kind of damage
the source's `diagnose` finds ("corrupt_record", "corrupt_frame",
"unreadable"; their sum is `skipped_corrupt`). The counts are part of the
state, so a resumed run goes on counting. Each skipped video is named with
its reason in one warning per process run, then only counted. A label
outside `data.num_classes` met while streaming raises `UserError` naming the
record (one `error:` line, exit 2, like the start-up checks).
"""

import atexit
import logging
import weakref
from typing import Optional

import numpy as np

from vivit_jax.data import pipeline
from vivit_jax.common.errors import UserError

_STATE_KEYS = ("next_index", "next_clip", "batches", "seed", "train", "skipped")
SKIP_KINDS = ("corrupt_record", "corrupt_frame", "unreadable")
_MAX_LOGGED_SKIPS = 20
_LIVE_ITERATORS = weakref.WeakSet()
# (source name, video) -> (kind, reason), for this process: a bad video is
# diagnosed and warned about once per run, however many epochs meet it.
_DIAGNOSED = {}


@atexit.register
def _close_live_iterators():
  # A prefetching pipeline must stop before Python tears down the objects
  # its numpy_function calls use.
  for iterator in list(_LIVE_ITERATORS):
    iterator.close()


def diagnose(source, local_id: int):
  """`(kind, reason)` for a video that yielded no clip (kind in SKIP_KINDS)."""
  find = getattr(source, "diagnose", None)
  if find is None:
    return "unreadable", "undecodable"
  kind, reason = find(local_id)
  return (kind if kind in SKIP_KINDS else "unreadable"), reason


class VideoIterator:
  """Iterates `{"video": (B, T, H, W, C), "label": (B,), ...}` numpy batches.

  Train: infinite. Eval: exactly `num_batches` batches covering every view
  of every local video once, padded rows marked `valid=False`.
  """

  def __init__(self, source, config, train: bool, batch_size: int, seed: int,
               process_index: int, state: Optional[dict] = None, row_fn=None):
    self.source = source
    self.config = config
    self.train = train
    self.batch_size = batch_size
    self.seed = seed
    self.process_index = process_index
    self._row_fn = row_fn or pipeline.make_row_fn(source, config, train, seed, process_index)
    self.num_videos = source.num_videos
    self.views_per_video = (1 if train
                            else config.eval_temporal_views * config.eval_spatial_views)
    # Eval: every process runs the same number of batches (the largest shard's).
    self.num_batches = (None if train else
                        -(-max(source.shard_sizes) * self.views_per_video // batch_size))
    self._skipped = dict.fromkeys(SKIP_KINDS, 0)
    self._skipped_examples = {}
    self._clips = 0
    self._order_cache = {}
    self._template = None  # Eval: an empty batch of the right structure.
    self._iterator = None
    self.set_state(state or {"next_index": 0, "next_clip": 0, "batches": 0})
    _LIVE_ITERATORS.add(self)

  def __iter__(self):
    return self

  def get_state(self) -> dict:
    return {"next_index": int(self._next_index), "next_clip": int(self._next_clip),
            "batches": int(self._batches), "seed": int(self.seed), "train": bool(self.train),
            "skipped": dict(self._skipped)}

  def set_state(self, state: dict):
    unknown = sorted(set(state) - set(_STATE_KEYS))
    if unknown:
      raise ValueError(f"unknown iterator state key(s) {unknown}; expected {_STATE_KEYS}")
    if state.get("seed", self.seed) != self.seed:
      raise ValueError(f"iterator state was saved with seed={state['seed']}, this "
                       f"iterator has seed={self.seed}")
    if state.get("train", self.train) != self.train:
      raise ValueError("iterator state is from a train iterator but this one is eval, "
                       "or the reverse")
    self._next_index = int(state["next_index"])
    self._next_clip = int(state.get("next_clip", 0))
    self._batches = int(state.get("batches", 0))
    counts = state.get("skipped", {})
    self._skipped = {kind: int(counts.get(kind, 0)) for kind in SKIP_KINDS}
    # The next video expected to start (clip 0); earlier ones are done.
    self._expected_video = self._next_index + (1 if self._next_clip else 0)
    dataset = pipeline.build_dataset(
        self.source, self.config, self.train, self.batch_size, self._row_fn,
        self._next_index, self._next_clip, self.seed, self.process_index)
    self._iterator = dataset.as_numpy_iterator()
    self._exhausted = False

  def close(self):
    """Stops the background pipeline; `set_state` starts it again."""
    self._iterator = None

  def stats(self) -> dict:
    """Counters (since the start of training, across resumes): skipped_corrupt
    videos and skipped_<kind> per kind, clips and batches emitted; the first
    skipped videos' names ("skipped_examples") and {name: reason}
    ("skipped_reasons") of this process run; the source's own counts."""
    out = {"skipped_corrupt": sum(self._skipped.values()),
           **{f"skipped_{kind}": count for kind, count in self._skipped.items()},
           "clips": self._clips, "batches": self._batches,
           "skipped_examples": list(self._skipped_examples),
           "skipped_reasons": dict(self._skipped_examples)}
    out.update(self.source.stats())
    return out

  def _local_id(self, position: int) -> int:
    if not self.train:
      return position
    epoch, index = divmod(position, self.num_videos)
    if epoch not in self._order_cache:
      self._order_cache = {epoch: pipeline.video_order(
          pipeline.base_key(self.seed, self.process_index), epoch, self.num_videos,
          self.config.shuffle_buffer).numpy()}
    return int(self._order_cache[epoch][index])

  def _note_skipped(self, up_to: int):
    for position in range(self._expected_video, up_to):
      local_id = self._local_id(position)
      what = self.source.describe(local_id)
      key = (self.source.name, what)
      if key not in _DIAGNOSED:
        kind, reason = diagnose(self.source, local_id)
        _DIAGNOSED[key] = kind, reason
        logging.warning("skipped %s: %s (a skipped video is named once per run, then "
                        "counted in data/skipped_corrupt)", what, reason)
      kind, reason = _DIAGNOSED[key]
      self._skipped[kind] += 1
      if len(self._skipped_examples) < _MAX_LOGGED_SKIPS:
        self._skipped_examples.setdefault(what, reason)

  def _account(self, batch: dict):
    """Updates skip counts and the resume position from a batch's rows."""
    for position in batch["position"].tolist():
      if position >= self._expected_video:
        self._note_skipped(position)
        self._expected_video = position + 1
    bad = np.flatnonzero(~batch["label_ok"])
    if bad.size:
      row = int(bad[0])
      where = self.source.describe(self._local_id(int(batch["position"][row])))
      raise UserError(f"label {int(batch['label'][row])} is outside [0, data.num_classes="
                      f"{self.config.num_classes})", where,
                      "relabel that video, or raise --config.data.num_classes above every "
                      "label of the data")
    last_position, last_clip = int(batch["position"][-1]), int(batch["clip"][-1])
    clips_per_video = self.config.clips_per_video if self.train else self.views_per_video
    if last_clip + 1 < clips_per_video:
      self._next_index, self._next_clip = last_position, last_clip + 1
    else:
      self._next_index, self._next_clip = last_position + 1, 0
    self._clips += len(batch["position"])

  def _padding(self, batch: Optional[dict]) -> dict:
    """Pads an eval batch (or makes an all-padding one) to batch_size rows."""
    template = batch if batch is not None else self._template
    have = 0 if batch is None else len(batch["video"])
    padded = {}
    for name, value in template.items():
      pad = np.zeros((self.batch_size - have,) + value.shape[1:], value.dtype)
      padded[name] = pad if batch is None else np.concatenate([value, pad])
    padded["video_index"][have:] = -1
    padded["view_index"][have:] = -1
    return padded

  def __next__(self) -> dict:
    if not self.train and self._batches >= self.num_batches:
      raise StopIteration
    batch = None
    if self._iterator is None:
      raise RuntimeError("iterator was closed; call set_state() to restart it")
    if not self._exhausted:
      try:
        batch = next(self._iterator)
      except StopIteration:
        self._exhausted = True
        if not self.train:
          self._note_skipped(self.num_videos)
          self._expected_video = self.num_videos
    if batch is None:
      if self.train:
        raise UserError("the training stream ended: every video failed to decode",
                        self.source.name, "check the files (each skipped video was named "
                        "above with its reason), then rerun")
      if self._template is None:
        self._template = self._empty_eval_batch()
      batch = self._padding(None)
    else:
      self._account(batch)
      for key in pipeline.INTERNAL_KEYS:
        batch.pop(key)
      if not self.train:
        self._template = {k: v[:0] for k, v in batch.items()}
        if len(batch["video"]) < self.batch_size:
          batch = self._padding(batch)
    self._batches += 1
    return batch

  def _empty_eval_batch(self) -> dict:
    config = self.config
    size, frames = config.image_size, config.num_frames
    video_dtype = np.uint8 if config.dtype == "uint8" else np.float32
    if config.dtype == "bfloat16":
      import ml_dtypes  # pylint: disable=import-outside-toplevel
      video_dtype = ml_dtypes.bfloat16
    template = {"video": np.zeros((0, frames, size, size, 3), video_dtype),
                "label": np.zeros((0,), np.int32), "video_index": np.zeros((0,), np.int32),
                "view_index": np.zeros((0,), np.int32), "valid": np.zeros((0,), bool)}
    if config.multi_label:
      template["multi_hot_label"] = np.zeros((0, config.num_classes), np.float32)
    if config.one_hot_labels:
      template["one_hot_label"] = np.zeros((0, config.num_classes), np.float32)
    return template
