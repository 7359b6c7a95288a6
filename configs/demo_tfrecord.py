r"""Data source "tfrecord": DMVR `tf.SequenceExample` TFRecords, demo model.

Any DMVR-layout files work (`image/encoded` JPEG frames, `clip/label/index`);
the default points at `make demo`'s generated moving-shapes dataset.

    python -m vivit_jax.main --config=configs/demo_tfrecord.py --workdir=/tmp/tfrecord \
        --config.data.train_files='/data/my_set/train-*' \
        --config.data.eval_files='/data/my_set/eval-*' --config.data.num_classes=4
"""

from vivit_jax.train import demo_settings
from vivit_jax.train.experiment import experiment_config, finalize


def get_config():
  model = dict(name="vivit", variant="spatio_temporal", **demo_settings.ENCODER,
               num_classes=demo_settings.NUM_CLASSES, classifier="token",
               pos_embedding="learned")
  config = experiment_config("train", model)
  demo_settings.set_demo_data(config.data)
  demo_settings.set_demo_training(config)
  return finalize(config)
