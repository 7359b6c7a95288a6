"""The generated demo dataset in its DMVR and TFDS forms (the world itself:
`test_demo_world.py`)."""

import os

import numpy as np

from vivit_jax import data
from vivit_jax.data.demo import synthetic


def test_write_demo_dataset_is_idempotent_and_trainable_config(tmp_path):
  out = str(tmp_path / "demo")
  written = data.write_demo_dataset(out, num_train=40, num_eval=12, num_frames=8, size=32)
  shards = sorted(os.listdir(out))
  mtimes = [os.path.getmtime(os.path.join(out, name)) for name in shards]
  again = data.write_demo_dataset(out, num_train=40, num_eval=12, num_frames=8, size=32)
  assert again == written
  assert [os.path.getmtime(os.path.join(out, name)) for name in shards] == mtimes
  config = data.demo_data_config(written)
  assert not config.flip and config.num_frames == 8
  train = data.create_iterator(config, train=True, batch_size=8, seed=0)
  batch = next(train)
  assert batch["video"].shape == (8, 8, 32, 32, 3) and train.num_videos == 40
  evaluation = data.create_iterator(config, train=False, batch_size=8)
  assert evaluation.num_videos == 12 and evaluation.num_batches == 2
  assert sum(int(b["valid"].sum()) for b in evaluation) == 12


def test_tfds_builder_generates_offline_and_reads_sampled_frames(tmp_path):
  config = dict(source="tfds", tfds_name="vivit_demo_motion/small",
                tfds_data_dir=str(tmp_path), num_classes=4, num_frames=4, stride=2,
                image_size=32, resize_short_side=32, crop="random", flip=False,
                eval_temporal_views=2, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
  train = data.create_iterator(config, train=True, batch_size=4, seed=0)
  batch = next(train)
  assert batch["video"].shape == (4, 4, 32, 32, 3) and train.num_videos == 64
  assert set(batch["label"].tolist()) <= {0, 1, 2, 3}
  evaluation = data.create_iterator(config, train=False, batch_size=16,
                                    process_index=1, process_count=2)
  assert evaluation.num_videos == 16
  rows = [b for b in evaluation]
  assert sum(int(b["valid"].sum()) for b in rows) == 32
  assert min(int(b["video_index"][b["valid"]].min()) for b in rows) == 16
  # Read the sampled frames back: find the generated source video (test
  # split: seed 1, 8 frames; TFDS stores it in its own order) whose frames are
  # nearest; views 0 and 1 sample its frames 0, 2, 4, 6 and 1, 3, 5, 7.
  source = list(synthetic.iterate_demo_videos(32, 8, 32, 4, 1))
  all_frames = np.stack([v for v, _ in source]).astype(np.float32)  # (32, 8, H, W, 3)
  matched = set()
  for b in rows:
    for video, label, index, view, valid in zip(b["video"], b["label"], b["video_index"],
                                                b["view_index"], b["valid"]):
      if not valid:
        continue
      pixels = np.asarray(video, np.float32) * 255.0
      errors = ((pixels[:, None, None] - all_frames[None]) ** 2).mean(axis=(3, 4, 5))
      best_video = int(errors.min(axis=2).sum(axis=0).argmin())  # errors: (4, 32, 8)
      matched.add((int(index), best_video))
      assert int(label) == source[best_video][1]
      np.testing.assert_array_equal(errors[:, best_video].argmin(axis=1),
                                    int(view) + 2 * np.arange(4))
  assert len({v for _, v in matched}) == 16  # 16 distinct videos for this process
