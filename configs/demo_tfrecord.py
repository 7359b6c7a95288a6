r"""Data source "tfrecord": DMVR `tf.SequenceExample` TFRecords, demo model.

Any DMVR-layout files work (`image/encoded` JPEG frames, `clip/label/index`);
the default points at `make demo`'s generated moving-shapes dataset.

    python -m vivit_jax.main --config=configs/demo_tfrecord.py --workdir=/tmp/tfrecord \
        --config.data.train_files='/data/my_set/train-*' \
        --config.data.eval_files='/data/my_set/eval-*' --config.data.num_classes=4
"""

import os
import sys

from vivit_jax.train.experiment import finalize

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # configs/ siblings
import demo_common  # noqa: E402  pylint: disable=wrong-import-position


def get_config():
  config = demo_common.supervised_demo_config()
  return finalize(config)
