r"""Demo, stage 1: masked pretraining of a small autoencoder on moving shapes.

The dataset is `make demo`'s generated one (`scripts/demo.py` writes it to
`demo_workdir/data`): a shape moving in one of 4 directions, read as 8
frames of 32 x 32. 8 x 8 patches, 2-frame tubelets (4 x 4 x 4 = 64 tokens),
75% random (MAE-ST) masking, so hidden tubelets are predictable from the
same place at other times and from the motion; 500 AdamW steps. `make demo`
reports the held-out normalised-pixel loss (1.0 = predicting each tubelet's
mean) and the plain-pixel MSE next to the copy-the-mean baseline.

Other objectives: `--config.model.mask_type=tube` (VideoMAE; add
`--config.model.mask_ratio=0.9`), `future` (next-frame prediction of the last
`model.future_frames` tubelets; `--config.train.reconstruction_loss=l1`,
`--config.train.norm_pix_loss=False` for raw-pixel targets, then eval also
reports forecast PSNR / SSIM against copy-last-frame), and dual masking
(VideoMAE V2) with `--config.model.decoder_keep_ratio=0.5`.

    python -m vivit_jax.main --config=configs/demo_pretrain.py --workdir=demo_workdir/pretrain
"""

from vivit_jax.train import demo_settings
from vivit_jax.train.experiment import experiment_config, finalize


def get_config():
  model = dict(name="videomae", **demo_settings.ENCODER, decoder_hidden_size=64,
               decoder_layers=1, decoder_heads=4, decoder_mlp_dim=128,
               pos_embedding="sinusoid", mask_type="random", mask_ratio=0.75,
               future_frames=1, decoder_keep_ratio=1.0)
  config = experiment_config("pretrain", model)
  demo_settings.set_demo_data(config.data)
  config.train.batch_size = 32
  config.train.num_steps = 500
  config.train.norm_pix_loss = True
  config.optimizer.name = "adamw"
  config.optimizer.learning_rate = 2e-3
  config.optimizer.b2 = 0.95
  config.optimizer.warmup_steps = 30
  config.optimizer.weight_decay = 0.05
  config.checkpoint.every_steps = 250
  config.checkpoint.keep = 2
  config.eval.every_steps = 250
  config.eval.batch_size = 32
  config.eval.num_batches = 4
  config.log.every_steps = 25
  return finalize(config)
