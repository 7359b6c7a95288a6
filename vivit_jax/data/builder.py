"""`create_iterator`: config -> source -> start-up checks -> `VideoIterator`.

Start-up checks fail fast, naming the config key or the file: a missing file
list or pattern, an empty dataset or process shard, labels outside
`num_classes` (all of a list file; the probed records otherwise, the rest
as they stream), and a clip longer than every probed video. Videos are
probed `probe_videos` at a time, each batch's clips decoded outside the
error-skipping path, until one yields a clip: bad videos at the head of a
list do not stop a run, and a pipeline that cannot decode anything fails
here (naming how many videos were tried) instead of spinning.
"""

from typing import Any, Optional

import tensorflow as tf

from vivit_jax.data import config as config_lib
from vivit_jax.data import iterator as iterator_lib
from vivit_jax.data import pipeline
from vivit_jax.data import registry
from vivit_jax.data import sampling


def build_source(config, train: bool, process_index: int = 0, process_count: int = 1):
  """The shard for this process of the source registered as `config.source`."""
  build = registry.get_source(config.source)
  return build(config, train, process_index, process_count)


def _check_labels(source, config, probed, probed_ids):
  # A source that knows every label up front (a list file) has them all checked.
  for position, label in enumerate(getattr(source, "all_labels", ())):
    if not 0 <= label < config.num_classes:
      where = getattr(source, "list_path", source.name)
      raise ValueError(f"{where}: video {position} has label {label}, outside "
                       f"[0, data.num_classes={config.num_classes})")
  for local_id, found in zip(probed_ids, probed):
    if found["num_frames"] <= 0:
      continue  # Unreadable: skipped and counted, its label unknown.
    if not found["labels"]:
      raise ValueError(f"{source.describe(local_id)}: no label (`clip/label/index` is empty)")
    for label in found["labels"]:
      if not 0 <= label < config.num_classes:
        raise ValueError(f"{source.describe(local_id)}: label {label} is outside "
                         f"[0, data.num_classes={config.num_classes})")


def _check_lengths(source, config, probed, probed_ids) -> None:
  lengths = [found["num_frames"] for found in probed]
  needed = (config.num_frames if config.sampling == "segment"
            else sampling.clip_span(config.num_frames, config.stride))
  longest = max(lengths)
  if longest and needed > longest:
    where = source.describe(probed_ids[lengths.index(longest)])
    raise ValueError(
        f"data.num_frames={config.num_frames} x data.stride={config.stride} spans {needed} "
        f"frames, longer than every probed video of {source.name} (longest: {longest} "
        f"frames, {where})")


def _first_clip(source, row_fn, local_ids, failures: list) -> bool:
  """Decodes one clip of each of `local_ids` in turn, errors visible; True
  at the first that decodes. Appends "video: reason" for each that does not."""
  for local_id in local_ids:
    try:
      row = row_fn(tf.constant(0, tf.int64), tf.constant(local_id, tf.int64))
    except tf.errors.OpError as error:
      failures.append(f"{source.describe(local_id)}: {error.message.splitlines()[0]}")
      continue
    if bool(tf.reduce_all(row["ok"])):
      return True
    reason = iterator_lib.diagnose(source, local_id)[1]
    failures.append(f"{source.describe(local_id)}: {reason}")
  return False


def _probe(source, config, row_fn) -> None:
  """Probes `data.probe_videos` videos at a time until one yields a clip.

  Every probed video's labels are checked; the clip length is checked
  against the probed videos. Fails only when the whole shard was tried.
  """
  chunk = max(int(config.probe_videos or 1), 1)
  probed_ids, probed, failures = [], [], []
  for start in range(0, source.num_videos, chunk):
    ids = list(range(start, min(start + chunk, source.num_videos)))
    found = source.probe(ids)
    _check_labels(source, config, found, ids)
    probed_ids += ids
    probed += found
    readable = [i for i, video in zip(ids, found) if video["num_frames"] > 0]
    failures += [f"{source.describe(i)}: no readable frames"
                 for i, video in zip(ids, found) if video["num_frames"] <= 0]
    _check_lengths(source, config, probed, probed_ids)
    if _first_clip(source, row_fn, readable, failures):
      return
  raise ValueError(f"{source.name}: none of the {len(probed_ids)} videos tried (all of this "
                   f"process's videos) yields a clip, e.g. {failures[:3]}")


def create_iterator(config: Any, train: bool, batch_size: int, seed: int = 0,
                    process_index: int = 0, process_count: int = 1,
                    state: Optional[dict] = None) -> iterator_lib.VideoIterator:
  """Host-local batch iterator for this process's shard; see `VideoIterator`.

  Args:
    config: data config (ConfigDict or mapping) overriding `default_data_config()`.
    train: infinite, shuffled, augmented clips if True; else one ordered pass
      over all T x S eval views of every local video.
    batch_size: rows per batch on this process (B_local).
    seed: makes order and augmentation reproducible.
    process_index, process_count: this process's contiguous shard of videos.
    state: a `get_state()` dict to resume from.
  """
  config = config_lib.resolve_data_config(config)
  if batch_size <= 0:
    raise ValueError(f"batch_size must be positive, got {batch_size}")
  if not 0 <= process_index < process_count:
    raise ValueError(f"process_index={process_index} not in [0, {process_count})")
  source = build_source(config, train, process_index, process_count)
  if source.num_videos == 0:
    raise ValueError(f"{source.name}: process {process_index} of {process_count} gets no "
                     f"videos ({source.num_videos_total} in total)")
  row_fn = pipeline.make_row_fn(source, config, train, seed, process_index)
  _probe(source, config, row_fn)
  return iterator_lib.VideoIterator(source, config, train, batch_size, seed, process_index,
                                    state=state, row_fn=row_fn)
