"""The console line and TensorBoard get the input's skip counts (docs/data.md),
from a real iterator over a real TFRecord with one damaged record."""

import pytest

from support import datasets as fx
from vivit_jax.train import inputs
from vivit_jax.train import metric_writer


@pytest.fixture()
def damaged_input(tmp_path):
  from vivit_jax import data  # pylint: disable=import-outside-toplevel
  from vivit_jax.data.sources import tfrecord as dmvr  # pylint: disable=import-outside-toplevel
  pattern = fx.write_dmvr_tfrecords(str(tmp_path / "clips"),
                                    [(fx.index_video(12, 32, 32), 0)] * 4, num_shards=1)
  path = pattern.replace("*", "00000")
  index = dmvr.scan_tfrecord(path)
  with open(path, "r+b") as f:  # One byte of record 1 flipped: its checksum fails.
    f.seek(int(index.offsets[1] + index.lengths[1] // 2))
    byte = f.read(1)[0]
    f.seek(int(index.offsets[1] + index.lengths[1] // 2))
    f.write(bytes([byte ^ 1]))
  config = dict(source="tfrecord", eval_files=pattern, num_classes=2, num_frames=4, stride=2,
                image_size=32, resize_short_side=32, mean=(0.0,) * 3, std=(1.0,) * 3)
  iterator = data.create_iterator(config, train=False, batch_size=2)
  list(iterator)
  return iterator


def test_log_line_names_the_skipped_videos_by_kind(damaged_input, capsys):
  counts = inputs.data_counters(damaged_input)
  assert counts == {"data/skipped_corrupt": 1, "data/skipped_corrupt_record": 1,
                    "data/skipped_corrupt_frame": 0, "data/skipped_unreadable": 0,
                    "data/truncated_files": 0, "data/empty_files": 0,
                    "data/not_tfrecord_files": 0, "data/corrupt_header_files": 0}
  progress = metric_writer.Progress(10, 8)
  progress.report(5, {"loss": 1.0}, counts)
  assert "| skipped 1 video (corrupt_record 1) |" in capsys.readouterr().out


def test_log_line_says_nothing_while_nothing_was_skipped(capsys):
  progress = metric_writer.Progress(10, 8)
  progress.report(5, {"loss": 1.0}, {"data/skipped_corrupt": 0})
  progress.report(6, {"loss": 1.0})
  assert "skipped" not in capsys.readouterr().out
