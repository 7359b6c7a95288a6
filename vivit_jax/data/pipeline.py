"""tf.data pipelines: videos in a seeded order -> decoded, augmented clip batches.

Train element `position` g (0, 1, 2, ... over all epochs of this process's
shard of N videos) is local video `order(epoch)[g % N]` with epoch = g // N,
and every random choice for it (frames, crop, flip, jitter, RandAugment)
derives from the stateless key fold_in(base_key, g). So the stream is a pure
function of (seed, process, g): starting at any g reproduces it exactly, and
parallel decoding cannot change it.

Every batch row carries its "position" and "clip" (clip / view number within
the video); `VideoIterator` turns those into the resume state and into the
count of skipped (undecodable) videos.
"""

import tensorflow as tf

from vivit_jax.data import registry
from vivit_jax.data import sampling
from vivit_jax.data import transforms

_ORDER_SALT = 1
_WINDOW_SALT = 2
_CLIP_SALT = 3
INTERNAL_KEYS = ("position", "clip", "label_ok")


def base_key(seed: int, process_index: int):
  """`(2,)` int64 stateless key for one process's stream."""
  return tf.constant([seed, process_index], tf.int64)


def video_order(key, epoch, num_videos: int, window: int = 0):
  """`(N,)` permutation of local video ids for `epoch`.

  window > 0: videos are shuffled within consecutive windows of that size
  and the windows visited in random order (read locality); 0: full shuffle.
  """
  epoch_key = tf.random.experimental.stateless_fold_in(
      tf.random.experimental.stateless_fold_in(key, tf.constant(_ORDER_SALT, tf.int64)),
      tf.cast(epoch, tf.int64))
  sort_key = tf.random.stateless_uniform([num_videos], epoch_key, dtype=tf.float32)
  if window and window < num_videos:
    num_windows = -(-num_videos // window)
    window_key = tf.random.experimental.stateless_fold_in(
        epoch_key, tf.constant(_WINDOW_SALT, tf.int64))
    window_rank = tf.math.invert_permutation(
        tf.argsort(tf.random.stateless_uniform([num_windows], window_key)))
    sort_key += tf.cast(tf.gather(window_rank, tf.range(num_videos) // window), tf.float32)
  return tf.cast(tf.argsort(sort_key, stable=True), tf.int64)


def train_positions(key, num_videos: int, start: int, window: int):
  """Infinite dataset of (position, local id) from position `start` on."""
  def epoch_elements(epoch):
    begin = tf.maximum(start - epoch * num_videos, 0)
    within = tf.range(begin, num_videos, dtype=tf.int64)
    order = video_order(key, epoch, num_videos, window)
    return tf.data.Dataset.from_tensor_slices((epoch * num_videos + within,
                                               tf.gather(order, within)))

  first_epoch = start // num_videos
  return tf.data.Dataset.range(first_epoch, 2**62).flat_map(epoch_elements)


def _labels(video, config, num_rows: int):
  labels = video["labels"]
  label_ok = tf.reduce_all(tf.logical_and(labels >= 0, labels < config.num_classes))
  label_ok = tf.logical_and(label_ok, tf.size(labels) > 0)
  out = {"label": tf.fill([num_rows], video["label"]),
         "label_ok": tf.fill([num_rows], label_ok)}
  if config.multi_label:
    multi_hot = tf.reduce_max(tf.one_hot(labels, config.num_classes), axis=0)
    out["multi_hot_label"] = tf.tile(multi_hot[None], [num_rows, 1])
  return out


def _augment(key, clip, config, ops):
  """`(T, h, w, 3)` uint8 window -> `(T, S, S, 3)` normalised clip.

  `ops`: `registry.resolve_ops(config.augmentations)`. Op i gets key i of
  `stateless_split(key, len(ops))`; enabled "uint8" ops run before the
  resize, then "unit" ops on [0, 1] pixels, each group in config order.
  """
  keys = tf.unstack(tf.random.experimental.stateless_split(key, max(len(ops), 1)))
  active = [(op, op_key, args, kwargs) for (op, args, kwargs), op_key in zip(ops, keys)
            if op.enabled(config)]
  for op, op_key, args, kwargs in active:
    if op.stage == "uint8":
      clip = op.fn(op_key, clip, config, *args, **kwargs)
  clip = transforms.resize_frames(clip, config.image_size, config.image_size)
  unit_ops = [entry for entry in active if entry[0].stage == "unit"]
  if not unit_ops:
    return _finish(clip, config, pixel_max=255.0)
  clip = clip / 255.0
  for op, op_key, args, kwargs in unit_ops:
    clip = op.fn(op_key, clip, config, *args, **kwargs)
  return _finish(clip, config, pixel_max=1.0)


def _finish(clip, config, pixel_max: float):
  """Float pixels on [0, pixel_max] -> the normalised clip, or uint8 ("uint8")."""
  if config.dtype == "uint8":
    return tf.saturate_cast(clip * (255.0 / pixel_max) + 0.5, tf.uint8)
  return transforms.normalize(clip, config.mean, config.std, config.dtype, pixel_max=pixel_max)


def _output_dtype(config):
  return {"bfloat16": tf.bfloat16, "uint8": tf.uint8}.get(config.dtype, tf.float32)


def train_clips_fn(source, config, key):
  """(position, local id) -> `clips_per_video` rows: "video" `(K, T, S, S, 3)`."""
  num_clips, num_frames, size = config.clips_per_video, config.num_frames, config.image_size
  ops = registry.resolve_ops(config.augmentations)

  def make_clips(video, element_key):
    clip_keys = [tf.random.experimental.stateless_split(
        tf.random.experimental.stateless_fold_in(
            element_key, tf.constant(_CLIP_SALT + k, tf.int64)), 3)
                 for k in range(num_clips)]
    if config.sampling == "segment":
      indices = [sampling.segment_clip(k[0], video["num_frames"], num_frames)
                 for k in clip_keys]
    else:
      indices = [sampling.random_clip(k[0], video["num_frames"], num_frames, config.stride)
                 for k in clip_keys]
    height, width = source.frame_shape(video)
    boxes = [transforms.train_crop_box(k[1], height, width, config) for k in clip_keys]
    clips, ok = source.read_clips(video, tf.stack(indices), boxes)
    return tf.stack([_augment(k[2], clip, config, ops)
                     for k, clip in zip(clip_keys, clips)]), ok

  def empty(video, element_key):
    del video, element_key
    return tf.zeros([num_clips, num_frames, size, size, 3], _output_dtype(config)), False

  def fn(position, local_id):
    element_key = tf.random.experimental.stateless_fold_in(key, position)
    video = source.load(local_id)
    clips, ok = tf.cond(video["ok"], lambda: make_clips(video, element_key),
                        lambda: empty(video, element_key))
    row = {"video": tf.ensure_shape(clips, [num_clips, num_frames, size, size, 3]),
           "position": tf.fill([num_clips], position),
           "clip": tf.range(num_clips, dtype=tf.int64),
           "ok": tf.fill([num_clips], tf.logical_and(video["ok"], ok))}
    row.update(_labels(video, config, num_clips))
    return row

  return fn


def eval_views_fn(source, config):
  """(position, local id) -> T_v * S_v rows, view = t * S_v + s, each `(T, S, S, 3)`."""
  temporal, spatial = config.eval_temporal_views, config.eval_spatial_views
  num_views, num_frames, size = temporal * spatial, config.num_frames, config.image_size
  short_side = config.eval_resize_short_side or config.resize_short_side

  def make_views(video):
    indices = sampling.eval_clips(video["num_frames"], num_frames, config.stride, temporal,
                                  config.sampling)
    clips, ok = source.read_clips(video, indices)
    views = [transforms.spatial_views(transforms.resize_short_side(clip, short_side),
                                      spatial, size) for clip in clips]
    views = tf.reshape(tf.stack(views), [num_views, num_frames, size, size, 3])
    return _finish(views, config, pixel_max=255.0), ok

  def empty():
    return tf.zeros([num_views, num_frames, size, size, 3], _output_dtype(config)), False

  def fn(position, local_id):
    video = source.load(local_id)
    views, ok = tf.cond(video["ok"], lambda: make_views(video), empty)
    row = {"video": tf.ensure_shape(views, [num_views, num_frames, size, size, 3]),
           "position": tf.fill([num_views], position),
           "clip": tf.range(num_views, dtype=tf.int64),
           "video_index": tf.fill([num_views], tf.cast(source.first_video + local_id,
                                                       tf.int32)),
           "view_index": tf.range(num_views, dtype=tf.int32),
           "valid": tf.ones([num_views], tf.bool),
           "ok": tf.fill([num_views], tf.logical_and(video["ok"], ok))}
    row.update(_labels(video, config, num_views))
    return row

  return fn


def _finish_batch(config):
  def fn(batch):
    if config.one_hot_labels:
      batch["one_hot_label"] = tf.one_hot(batch["label"], config.num_classes)
    return batch
  return fn


def make_row_fn(source, config, train: bool, seed: int, process_index: int):
  """The per-video function: (position, local id) int64 scalars -> rows.

  A plain Python function: `Dataset.map` traces it into the pipeline and the
  start-up probe runs it eagerly on a few videos. (Wrapping it in a
  `tf.function` here made every iterator, e.g. one per periodic eval, trace
  a new function of the same code: TensorFlow's retracing warning.) Plain
  TensorFlow code, so AutoGraph is off (as `autograph=False` had it).
  """
  if train:
    fn = train_clips_fn(source, config, base_key(seed, process_index))
  else:
    fn = eval_views_fn(source, config)
  return tf.autograph.experimental.do_not_convert(fn)


def build_dataset(source, config, train: bool, batch_size: int, row_fn,
                  start_position: int = 0, start_clip: int = 0, seed: int = 0,
                  process_index: int = 0):
  """Batches of rows from (start_position, start_clip) on.

  Train: infinite, `drop_remainder` batches. Eval: one pass over local videos
  in order, the last batch possibly short (`VideoIterator` pads it).
  `row_fn` comes from `make_row_fn` with the same seed and process.
  """
  parallel = tf.data.AUTOTUNE if config.num_parallel_calls == -1 else config.num_parallel_calls
  if train:
    elements = train_positions(base_key(seed, process_index), source.num_videos,
                               start_position, config.shuffle_buffer)
  else:
    local_ids = tf.data.Dataset.range(start_position, source.num_videos)
    elements = local_ids.map(lambda i: (i, i))
  dataset = elements.map(row_fn, num_parallel_calls=parallel, deterministic=True)
  dataset = dataset.ignore_errors()
  rows_per_video = (config.clips_per_video if train
                    else config.eval_temporal_views * config.eval_spatial_views)
  if batch_size % rows_per_video == 0 and start_clip == 0:
    # Whole videos per batch: batch the per-video row stacks and merge the
    # leading dims, one copy of the pixels instead of two (unbatch + batch).
    dataset = dataset.filter(lambda row: row["ok"][0])
    dataset = dataset.batch(batch_size // rows_per_video, drop_remainder=train)
    dataset = dataset.map(lambda rows: {k: tf.reshape(v, tf.concat([[-1], tf.shape(v)[2:]], 0))
                                        for k, v in rows.items() if k != "ok"})
  else:
    dataset = dataset.unbatch().filter(lambda row: tf.logical_and(
        row["ok"], tf.logical_or(row["position"] != start_position, row["clip"] >= start_clip)))
    dataset = dataset.map(lambda row: {k: v for k, v in row.items() if k != "ok"})
    dataset = dataset.batch(batch_size, drop_remainder=train)
  dataset = dataset.map(_finish_batch(config))
  dataset = dataset.prefetch(config.prefetch_batches or tf.data.AUTOTUNE)
  options = tf.data.Options()
  options.deterministic = True
  options.threading.max_intra_op_parallelism = 1
  return dataset.with_options(options)
