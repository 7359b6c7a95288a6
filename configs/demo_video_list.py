r"""Data source "video_list": VideoMAE-style list files of video paths, demo model.

Each line of a list is `relative/path.mp4 label` (or `path,label`), joined
to `data.video_root` and decoded with PyAV (mp4, webm, avi, ...).

    python -m vivit_jax.main --config=configs/demo_video_list.py --workdir=/tmp/videos \
        --config.data.video_root=/data/videos --config.data.train_list=/data/train.txt \
        --config.data.eval_list=/data/val.txt --config.data.num_classes=4
"""

import os

from vivit_jax.train import demo_settings
from vivit_jax.train.experiment import finalize


def get_config():
  config = demo_settings.supervised_demo_config()
  d = config.data
  d.source = "video_list"
  d.train_files = d.eval_files = ""
  d.video_root = os.path.join(demo_settings.REPO, "demo_workdir", "videos")
  d.train_list = os.path.join(d.video_root, "train.txt")
  d.eval_list = os.path.join(d.video_root, "eval.txt")
  return finalize(config)
