"""Settings shared by the demo configs (`configs/demo_*.py`) and `make demo`.

Where the demo writes its generated dataset (`demo_workdir/data` in the
repository; `--config.data.train_files` / `eval_files` point elsewhere), the
data settings for it, and the encoder geometry both demo stages share.

Config files are loaded by path (`--config=configs/demo_x.py`), not as a
package, so each demo config imports this file as the top-level module
`demo_common` after putting its own directory on `sys.path`:

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import demo_common
"""

import os

from vivit_jax.data.demo.synthetic import class_names
from vivit_jax.train.experiment import experiment_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_DATA_DIR = os.path.join(REPO, "demo_workdir", "data")
# The generated clips: 16 frames of 64 x 64 (two shapes of radius 5-8 pixels and
# a bouncing disc over drifting gratings); training reads every 2nd frame at 32 x 32.
SOURCE_FRAMES, SOURCE_SIZE, NUM_TRAIN, NUM_EVAL = 16, 64, 4096, 256
NUM_FRAMES, FRAME_STRIDE, IMAGE_SIZE, NUM_CLASSES = 8, 2, 32, 4
# `make demo`'s scarce-label comparison: the labels of the first 5% of the
# training clips (one TFRecord file), fine-tuned from the pretrained encoder
# and from random init with the same recipe and SCARCE_STEPS steps.
LABELLED_TRAIN = NUM_TRAIN // 20
LABELLED_FILES = os.path.join(DEMO_DATA_DIR, f"labelled_{LABELLED_TRAIN}.tfrecord")
SCARCE_STEPS = 150

# Encoder geometry shared by the autoencoder and the classifier, so the
# pretrained encoder loads into the classifier by name: 8 x 8 patches,
# 2-frame tubelets, 4 x 4 x 4 = 64 tokens.
ENCODER = dict(hidden_size=96, num_layers=4, num_heads=4, mlp_dim=192, patch_size=8,
               tubelet_size=2)


def set_demo_data(data, data_dir: str = DEMO_DATA_DIR) -> None:
  """The moving-shapes dataset of `vivit_jax.data.demo.synthetic.write_demo_dataset`."""
  data.source = "tfrecord"
  data.train_files = os.path.join(data_dir, "train-*-of-*.tfrecord")
  data.eval_files = os.path.join(data_dir, "eval-*-of-*.tfrecord")
  data.num_classes = NUM_CLASSES
  data.class_names = class_names(NUM_CLASSES)
  data.num_frames = NUM_FRAMES
  data.stride = FRAME_STRIDE
  data.image_size = IMAGE_SIZE
  data.resize_short_side = IMAGE_SIZE  # eval: whole frames, downsampled
  data.crop = "random_resized"  # train: scale jitter against memorising backgrounds
  data.crop_area_range = (0.5, 1.0)
  data.crop_aspect_range = (0.8, 1.25)
  data.flip = False  # A flip would swap the classes "left" and "right".
  data.mean = (0.5, 0.5, 0.5)
  data.std = (0.25, 0.25, 0.25)
  data.probe_videos = 4
  data.num_parallel_calls = 2


def set_demo_training(config, num_steps: int = 600) -> None:
  """Supervised training from scratch for the per-source demo configs."""
  config.train.batch_size = 32
  config.train.num_steps = num_steps
  config.optimizer.name = "adamw"
  config.optimizer.learning_rate = 1e-3
  config.optimizer.warmup_steps = 30
  config.checkpoint.every_steps = 200
  config.checkpoint.keep = 2
  config.eval.every_steps = 200
  config.eval.batch_size = 32
  config.log.every_steps = 25


def supervised_demo_config():
  """The per-source demo configs' common start (not yet finalised): a
  `spatio_temporal` ViViT with the demo encoder, trained from scratch on
  the demo data; each config then points `data` at its own source."""
  model = dict(name="vivit", variant="spatio_temporal", **ENCODER, num_classes=NUM_CLASSES,
               classifier="token", pos_embedding="learned")
  config = experiment_config("train", model)
  set_demo_data(config.data)
  set_demo_training(config)
  return config

