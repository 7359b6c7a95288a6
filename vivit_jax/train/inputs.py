"""What the train and eval loops read from the data config, in one place.

  video_shape(config)      `(T, H, W, C)` of one clip.
  class_names(config)      `data.class_names`, or None.
  input_spec(config)       the checkpoint's `"input"` block matching the eval path.
  create_iterator(config, train)   this process's shard of the data pipeline
                           (imported lazily: it needs TensorFlow).
  data_counters(iterator)  its skip and bad-file counts as `data/<name>` scalars.
"""

from typing import Any, Dict, List, Optional, Tuple

import jax

from vivit_jax.checkpoints.input_spec import InputSpec


def video_shape(config) -> Tuple[int, int, int, int]:
  """`(T, H, W, C)` of one clip, from the data config."""
  size = int(config.data.image_size)
  return (int(config.data.num_frames), size, size, 3)


def class_names(config) -> Optional[List[str]]:
  """The data config's class names (`data.class_names`), if it has them."""
  names = config.data.class_names
  return [str(n) for n in names] if names else None


def input_spec(config) -> Dict[str, Any]:
  """The inference `"input"` block matching the data config's eval path."""
  data = config.data
  return InputSpec(
      num_frames=int(data.num_frames), frame_stride=int(data.stride),
      image_size=(int(data.image_size), int(data.image_size)),
      resize_short_side=int(data.eval_resize_short_side or data.resize_short_side),
      mean=tuple(float(v) for v in data.mean), std=tuple(float(v) for v in data.std)).to_json()


def local_batch_size(global_batch: int, what: str) -> int:
  """This process's share of a global batch; must divide evenly."""
  count = jax.process_count()
  if global_batch % count:
    raise ValueError(f"{what}={global_batch} is not divisible by the {count} processes")
  return global_batch // count


def create_iterator(config, train: bool, state=None):
  """The data pipeline for `train.batch_size` / `eval.batch_size` global clips."""
  from vivit_jax import data  # pylint: disable=g-import-not-at-top
  batch = config.train.batch_size if train else config.eval.batch_size
  kwargs = {} if state is None else {"state": state}
  return data.create_iterator(
      config.data, train=train,
      batch_size=local_batch_size(batch, "train.batch_size" if train else "eval.batch_size"),
      seed=int(config.seed), process_index=jax.process_index(),
      process_count=jax.process_count(), **kwargs)


def data_counters(iterator) -> Dict[str, int]:
  """`{"data/skipped_corrupt": n, "data/skipped_<kind>": n, "data/<kind>_files": n}`
  of an iterator's `stats()` (docs/data.md); {} for one without stats."""
  stats = getattr(iterator, "stats", None)
  if stats is None:
    return {}
  return {f"data/{name}": int(value) for name, value in sorted(dict(stats()).items())
          if isinstance(value, int) and (name.startswith("skipped_") or name.endswith("_files"))}
