"""Source "tfds": any TFDS video dataset (e.g. "ucf101", "vivit_demo_motion").

The split's TFRecord shards (from `SplitInfo.file_instructions`) are indexed
and read by offset like DMVR files; records are deserialised with the video
feature under `tfds.decode.SkipDecoding()`, so frames stay encoded and only
the sampled ones are decoded.
"""

import tensorflow_datasets as tfds

from vivit_jax.data.registry import register_source
from vivit_jax.data.sources import tfrecord


def _builder(config):
  # Importing registers the demo builder with TFDS.
  from vivit_jax.data.demo import tfds_demo  # pylint: disable=import-outside-toplevel,unused-import
  kwargs = {"data_dir": config.tfds_data_dir or None}
  try:
    builder = tfds.builder(config.tfds_name, **kwargs)
  except Exception as error:  # pylint: disable=broad-except
    raise ValueError(f"data.tfds_name={config.tfds_name!r}: no such TFDS builder "
                     f"({error})") from error
  if not builder.is_prepared():
    if config.tfds_download or config.tfds_name.split("/")[0] == tfds_demo.NAME:
      download_config = tfds.download.DownloadConfig(
          manual_dir=config.tfds_manual_dir or None)
      builder.download_and_prepare(download_config=download_config)
    else:
      raise FileNotFoundError(
          f"data.tfds_name={config.tfds_name!r} is not prepared in data.tfds_data_dir="
          f"{builder.data_dir!r}; build it (`tfds build {config.tfds_name} --data_dir ... "
          f"--manual_dir ...`) or set data.tfds_download=True")
  return builder


def tfds_source(config, split_key: str, process_index: int, process_count: int):
  """RecordSource over split `config[split_key]` of TFDS dataset `tfds_name`."""
  builder = _builder(config)
  split = config[split_key]
  if split not in builder.info.splits:
    raise ValueError(f"data.{split_key}={split!r}: {config.tfds_name} has splits "
                     f"{sorted(builder.info.splits)}")
  if builder.info.file_format != tfds.core.FileFormat.TFRECORD:
    raise ValueError(f"data.tfds_name={config.tfds_name!r} is stored as "
                     f"{builder.info.file_format}; only TFRecord TFDS datasets are read")
  features = builder.info.features
  for key in ("tfds_video_key", "tfds_label_key"):
    if config[key] not in features:
      raise ValueError(f"data.{key}={config[key]!r}: {config.tfds_name} has features "
                       f"{sorted(features)}")
  video_key, label_key = config.tfds_video_key, config.tfds_label_key
  decoders = {video_key: tfds.decode.SkipDecoding()}

  def parse(serialized):
    example = features.deserialize_example(serialized, decoders=decoders)
    return {"frames": example[video_key], "labels": example[label_key][None],
            "filename": ""}

  selections = [
      tfrecord.RecordSelection(str(instruction.filename), instruction.skip,
                                    instruction.take)
      for instruction in builder.info.splits[split].file_instructions]
  return tfrecord.RecordSource(selections, parse, process_index, process_count,
                               name=f"TFDS {config.tfds_name}[{split}]")


@register_source("tfds")
def registered_tfds_source(config, train: bool, process_index: int, process_count: int):
  """`data.tfds_name`, split `data.train_split` / `data.eval_split`."""
  return tfds_source(config, "train_split" if train else "eval_split", process_index,
                     process_count)
