r"""Data source "video_list": VideoMAE-style list files of video paths, demo model.

Each line of a list is `relative/path.mp4 label` (or `path,label`), joined
to `data.video_root` and decoded with PyAV (mp4, webm, avi, ...).

    python -m vivit_jax.main --config=configs/demo_video_list.py --workdir=/tmp/videos \
        --config.data.video_root=/data/videos --config.data.train_list=/data/train.txt \
        --config.data.eval_list=/data/val.txt --config.data.num_classes=4
"""

import os
import sys

from vivit_jax.train.experiment import finalize

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # configs/ siblings
import demo_common  # noqa: E402  pylint: disable=wrong-import-position


def get_config():
  config = demo_common.supervised_demo_config()
  d = config.data
  d.source = "video_list"
  d.train_files = d.eval_files = ""
  d.video_root = os.path.join(demo_common.REPO, "demo_workdir", "videos")
  d.train_list = os.path.join(d.video_root, "train.txt")
  d.eval_list = os.path.join(d.video_root, "eval.txt")
  return finalize(config)
