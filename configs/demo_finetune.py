r"""Demo, stage 2: fine-tune the demo's pretrained encoder to classify motion.

A `spatio_temporal` ViViT with the pretraining encoder's geometry (see
`vivit_jax/train/demo_settings.py`), initialised from the pretraining
workdir's newest checkpoint (`init_from.kind="pretrain"`), trained with
AdamW on scarce labels (the first 5% of the training clips,
`demo_settings.LABELLED_FILES`, which `make demo` writes) and evaluated on the
held-out generated videos (chance: 25%). `make demo` runs it twice, from the
pretrained encoder and from random init (`--config.init_from.kind=`), to show
what pretraining buys; `--config.data.train_files` picks another label set.

    python -m vivit_jax.main --config=configs/demo_finetune.py --workdir=demo_workdir/finetune \
        --config.init_from.path=demo_workdir/pretrain
"""

import os

from vivit_jax.train import demo_settings
from vivit_jax.train.experiment import experiment_config, finalize


def get_config():
  model = dict(name="vivit", variant="spatio_temporal", **demo_settings.ENCODER,
               num_classes=demo_settings.NUM_CLASSES, classifier="token",
               pos_embedding="learned")
  config = experiment_config("finetune", model)
  demo_settings.set_demo_data(config.data)
  config.data.train_files = demo_settings.LABELLED_FILES
  config.train.batch_size = 32
  config.train.num_steps = 300
  config.train.label_smoothing = 0.0
  config.optimizer.name = "adamw"
  config.optimizer.learning_rate = 5e-4
  config.optimizer.warmup_steps = 30
  config.optimizer.weight_decay = 0.05
  config.init_from.kind = "pretrain"
  config.init_from.path = os.path.join(demo_settings.REPO, "demo_workdir", "pretrain")
  config.checkpoint.every_steps = 300
  config.checkpoint.keep = 1
  config.eval.every_steps = 300
  config.eval.batch_size = 32
  config.log.every_steps = 25
  return finalize(config)
