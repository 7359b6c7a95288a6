r"""Demo, stage 1: masked pretraining of a small autoencoder on moving shapes.

The dataset is `make demo`'s generated one (`scripts/demo.py` writes it to
`demo_workdir/data`): shapes moving in one of 4 directions, read as 8
frames of 32 x 32. 8 x 8 patches, 2-frame tubelets (4 x 4 x 4 = 64 tokens),
75% random (MAE-ST) masking, so hidden tubelets are predictable from the
same place at other times and from the motion; 500 AdamW steps (peak lr
1.5e-3). `--config.model.mask_type=tube` / `future` train the other two
objectives (`future` forecasts the last tubelet; with
`--config.train.norm_pix_loss=False --config.train.reconstruction_loss=l1` on raw pixels).

    python -m vivit_jax.main --config=configs/demo_pretrain.py --workdir=demo_workdir/pretrain

Variants (`--config=configs/demo_pretrain.py:NAME`):
  forecast  next-frame prediction: `future` masking (the last tubelet, 2 of
            8 frames, hidden), raw-pixel l2 targets (nothing borrowed from
            the truth, so copy-last-frame is the baseline to beat), a
            2-layer 128-wide decoder, 2000 steps at peak lr 1e-3.
"""

import os
import sys

from vivit_jax.train.experiment import experiment_config, finalize

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # configs/ siblings
import demo_common  # noqa: E402  pylint: disable=wrong-import-position


VARIANTS = ("forecast",)


def get_config(arg=None):
  if arg is not None and arg not in VARIANTS:
    raise ValueError(f"configs/demo_pretrain.py has variants {list(VARIANTS)}, got {arg!r}")
  model = dict(name="videomae", **demo_common.ENCODER, decoder_hidden_size=64,
               decoder_layers=1, decoder_heads=4, decoder_mlp_dim=128,
               pos_embedding="sinusoid", mask_type="random", mask_ratio=0.75)
  config = experiment_config("pretrain", model)
  demo_common.set_demo_data(config.data)
  config.train.batch_size = 32
  config.train.num_steps = 500
  config.train.norm_pix_loss = True
  config.optimizer.name = "adamw"
  config.optimizer.learning_rate = 1.5e-3
  config.optimizer.b2 = 0.95
  config.optimizer.warmup_steps = 25
  config.optimizer.weight_decay = 0.05
  config.checkpoint.every_steps = 250
  config.checkpoint.keep = 2
  config.eval.every_steps = 250
  config.eval.batch_size = 32
  config.eval.num_batches = 2
  config.log.every_steps = 25
  if arg == "forecast":
    config.model.mask_type = "future"
    config.model.decoder_hidden_size = 128
    config.model.decoder_layers = 2
    config.model.decoder_mlp_dim = 256
    config.train.norm_pix_loss = False
    config.train.reconstruction_loss = "l2"
    config.train.num_steps = 2000
    config.optimizer.learning_rate = 1e-3
    config.optimizer.warmup_steps = 100
    config.checkpoint.every_steps = 500
    config.eval.every_steps = 500
  return finalize(config)
