"""What the train and eval loops read of the input, in one place.

Everything here takes a `specs.DataSpec` (`specs.DataSpec.from_config(config)`,
or `specs.resolve(config).data`):
  video_shape(spec)        `(T, H, W, C)` of one clip.
  class_names(spec)        `data.class_names`, or None.
  input_spec(spec)         the serving `"input"` block matching the eval path.
  create_iterator(spec, train)   this process's shard of the data pipeline
                           (imported lazily: it needs TensorFlow).
  data_counters(iterator)  its skip and bad-file counts as `data/<name>` scalars.
"""

from typing import Any, Dict, List, Optional, Tuple

import jax

from vivit_jax.checkpoints.input_spec import InputSpec
from vivit_jax.train.specs import DataSpec


def video_shape(spec: DataSpec) -> Tuple[int, int, int, int]:
  """`(T, H, W, C)` of one clip (`data.num_frames`, `data.image_size`)."""
  return (spec.num_frames, spec.image_size, spec.image_size, 3)


def class_names(spec: DataSpec) -> Optional[List[str]]:
  """The data config's class names (`data.class_names`), if it has them."""
  return list(spec.class_names) if spec.class_names else None


def input_spec(spec: DataSpec) -> Dict[str, Any]:
  """The inference `"input"` block matching the data config's eval path."""
  return InputSpec(
      num_frames=spec.num_frames, frame_stride=spec.stride,
      image_size=(spec.image_size, spec.image_size),
      resize_short_side=spec.resize_short_side,
      mean=tuple(float(v) for v in spec.mean), std=tuple(float(v) for v in spec.std)).to_json()


def local_batch_size(global_batch: int, what: str) -> int:
  """This process's share of a global batch; must divide evenly."""
  count = jax.process_count()
  if global_batch % count:
    raise ValueError(f"{what}={global_batch} is not divisible by the {count} processes")
  return global_batch // count


def create_iterator(spec: DataSpec, train: bool, state=None):
  """The data pipeline for `train.batch_size` / `eval.batch_size` global clips."""
  from vivit_jax import data  # pylint: disable=g-import-not-at-top
  batch = spec.train_batch_size if train else spec.eval_batch_size
  kwargs = {} if state is None else {"state": state}
  return data.create_iterator(
      spec.data, train=train,
      batch_size=local_batch_size(batch, "train.batch_size" if train else "eval.batch_size"),
      seed=spec.seed, process_index=jax.process_index(),
      process_count=jax.process_count(), **kwargs)


def data_counters(iterator) -> Dict[str, int]:
  """`{"data/skipped_corrupt": n, "data/skipped_<kind>": n, "data/<kind>_files": n}`
  of an iterator's `stats()` (docs/data.md); {} for one without stats."""
  stats = getattr(iterator, "stats", None)
  if stats is None:
    return {}
  return {f"data/{name}": int(value) for name, value in sorted(dict(stats()).items())
          if isinstance(value, int) and (name.startswith("skipped_") or name.endswith("_files"))}
