r"""Demo, stage 2: fine-tune the demo's pretrained encoder to classify motion.

A `spatio_temporal` ViViT with the pretraining encoder's geometry (see
`configs/demo_common.py`), initialised from the pretraining
workdir's newest checkpoint (`init_from.kind="pretrain"`: the encoder
blocks, and the learned position table starts as the encoder's sinusoid
table; the CLS token and head are fresh), trained with
AdamW and evaluated on the held-out generated videos (chance: 25%).

    python -m vivit_jax.main --config=configs/demo_finetune.py --workdir=demo_workdir/finetune \
        --config.init_from.path=demo_workdir/pretrain
"""

import os
import sys

from vivit_jax.train.experiment import experiment_config, finalize

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # configs/ siblings
import demo_common  # noqa: E402  pylint: disable=wrong-import-position


def get_config():
  model = dict(name="vivit", variant="spatio_temporal", **demo_common.ENCODER,
               num_classes=demo_common.NUM_CLASSES, classifier="token",
               pos_embedding="learned")
  config = experiment_config("finetune", model)
  demo_common.set_demo_data(config.data)
  config.train.batch_size = 32
  config.train.num_steps = 300
  config.train.label_smoothing = 0.0
  config.optimizer.name = "adamw"
  config.optimizer.learning_rate = 5e-4
  config.optimizer.warmup_steps = 30
  config.optimizer.weight_decay = 0.05
  config.init_from.kind = "pretrain"
  config.init_from.path = os.path.join(demo_common.REPO, "demo_workdir", "pretrain")
  config.checkpoint.every_steps = 200
  config.checkpoint.keep = 2
  config.eval.every_steps = 300
  config.eval.batch_size = 32
  config.log.every_steps = 25
  return finalize(config)
