r"""VideoMAE-B masked pretraining: 16 frames x 224, 90% tube masking.

ViT-B encoder over 2 x 16 x 16 tubelets (8 x 14 x 14 = 1568 tokens, 156 of
them visible), a 4-layer 384-wide decoder, per-tubelet normalised pixel
targets; AdamW (0.9, 0.95), lr 1.5e-4 per 256 clips, cosine, 40 warm-up
epochs, 800 epochs. Sampling stride 4 (Kinetics), multi-scale crops, flips.

Fed for an accelerator: uint8 clips, normalised on the device
(`data.dtype="uint8"`), and `data.clips_per_video=2` clips from each decoded
video (repeated sampling: VideoMAE fine-tunes on 2 clips per video, MAE-ST
pretrains on 4): a video file is decoded once for both clips, a TFRecord read
and parsed once (each clip still decodes its own JPEG frames). The batch
counts clips (512, from 256 videos) and an epoch is 240k clips, so the lr,
step count and clips seen are those of one clip per video.

    python -m vivit_jax.main --config=configs/videomae_b_pretrain.py --workdir=$WORKDIR \
      --config.data.train_files='gs://BUCKET/kinetics400/train-*' \
      --config.data.eval_files='gs://BUCKET/kinetics400/validation-*'
"""

from vivit_jax.train.experiment import experiment_config, finalize

TRAIN_VIDEOS = 240_000
CLIPS_PER_VIDEO = 2  # repeated sampling: clips drawn from each decoded video


def get_config():
  model = dict(name="videomae", size="B", patch_size=16, tubelet_size=2,
               decoder_hidden_size=384, decoder_layers=4, decoder_heads=6,
               decoder_mlp_dim=1536, pos_embedding="sinusoid", mask_type="tube",
               mask_ratio=0.9, drop_path_rate=0.0, dtype="bfloat16", remat_policy="none")
  config = experiment_config("pretrain", model)

  d = config.data
  d.source = "tfrecord"
  d.train_files = "/data/kinetics400/train-*.tfrecord"
  d.eval_files = "/data/kinetics400/validation-*.tfrecord"
  d.num_classes = 400
  d.num_frames = 16
  d.stride = 4
  d.image_size = 224
  d.crop = "multi_scale"
  d.flip = True
  d.shuffle_buffer = 1024
  d.dtype = "uint8"  # normalised on the device (docs/performance.md: host cores)
  d.clips_per_video = CLIPS_PER_VIDEO

  epochs, warmup_epochs = 800, 40
  config.train.batch_size = 512
  steps_per_epoch = TRAIN_VIDEOS // config.train.batch_size
  config.train.num_steps = epochs * steps_per_epoch
  config.train.norm_pix_loss = True

  o = config.optimizer
  o.name = "adamw"
  o.learning_rate = 1.5e-4 * config.train.batch_size / 256
  o.b1, o.b2 = 0.9, 0.95
  o.weight_decay = 0.05
  o.warmup_steps = warmup_epochs * steps_per_epoch
  o.end_learning_rate = 1e-5

  config.checkpoint.every_steps = 5000
  config.eval.every_steps = 20_000
  config.eval.num_batches = 20  # reconstruction loss on a fixed subset
  config.log.every_steps = 100
  return finalize(config)
