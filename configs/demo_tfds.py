r"""Data source "tfds": any TFDS video dataset, demo model.

Defaults to the TFDS builder of the demo data (`vivit_demo_motion`, built
offline from code on first use under `data.tfds_data_dir`); for a public set
set e.g. `--config.data.tfds_name=ucf101/ucf101_1_256
--config.data.num_classes=101 --config.data.tfds_download=True`.

    python -m vivit_jax.main --config=configs/demo_tfds.py --workdir=/tmp/tfds
"""

import os
import sys

from vivit_jax.train.experiment import finalize

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # configs/ siblings
import demo_common  # noqa: E402  pylint: disable=wrong-import-position


def get_config():
  config = demo_common.supervised_demo_config()
  d = config.data
  d.source = "tfds"
  d.train_files = d.eval_files = ""
  d.tfds_name = "vivit_demo_motion/default"
  d.tfds_data_dir = os.path.join(demo_common.REPO, "demo_workdir", "tfds")
  d.train_split, d.eval_split = "train", "test"
  return finalize(config)
