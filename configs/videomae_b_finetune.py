r"""VideoMAE-B fine-tuning on Kinetics-400 from a masked-pretraining run.

The classifier is ViViT's `spatio_temporal` model with VideoMAE's head
(mean-pooled tokens + fc_norm, sinusoidal positions), initialised from the
pretrained encoder (`init_from.kind="pretrain"`: a workdir of
`configs/videomae_b_pretrain.py`; or "model": a converted Hugging Face
VideoMAE). AdamW with layer-wise lr decay 0.75, drop path 0.1, Mixup 0.8 +
CutMix 1.0, label smoothing 0.1, RandAugment (4, 7); 75 epochs, 5 warm-up.
Evaluation: 5 temporal x 3 spatial views. uint8 clips, normalised on the
device (`data.dtype="uint8"`).

    python -m vivit_jax.main --config=configs/videomae_b_finetune.py --workdir=$WORKDIR \
      --config.init_from.path=$PRETRAIN_WORKDIR \
      --config.data.train_files='gs://BUCKET/kinetics400/train-*' \
      --config.data.eval_files='gs://BUCKET/kinetics400/validation-*'
"""

from vivit_jax.train.experiment import experiment_config, finalize

TRAIN_VIDEOS = 240_000


def get_config():
  model = dict(name="vivit", variant="spatio_temporal", size="B", patch_size=16,
               tubelet_size=2, num_classes=400, classifier="gap", fc_norm=True,
               pos_embedding="sinusoid", drop_path_rate=0.1, head_dropout_rate=0.0,
               dtype="bfloat16")
  config = experiment_config("finetune", model)

  d = config.data
  d.source = "tfrecord"
  d.train_files = "/data/kinetics400/train-*.tfrecord"
  d.eval_files = "/data/kinetics400/validation-*.tfrecord"
  d.num_classes = 400
  d.num_frames = 16
  d.stride = 4
  d.image_size = 224
  d.crop = "random_resized"
  d.flip = True
  d.rand_augment_layers = 4
  d.rand_augment_magnitude = 7
  d.eval_temporal_views = 5
  d.eval_spatial_views = 3
  d.shuffle_buffer = 1024
  d.dtype = "uint8"  # normalised on the device

  epochs, warmup_epochs = 75, 5
  config.train.batch_size = 384
  steps_per_epoch = TRAIN_VIDEOS // config.train.batch_size
  config.train.num_steps = epochs * steps_per_epoch
  config.train.label_smoothing = 0.1
  config.train.mixup_alpha = 0.8
  config.train.cutmix_alpha = 1.0

  o = config.optimizer
  o.name = "adamw"
  o.learning_rate = 1e-3 * config.train.batch_size / 256
  o.b1, o.b2 = 0.9, 0.999
  o.weight_decay = 0.05
  o.layer_decay = 0.75
  o.warmup_steps = warmup_epochs * steps_per_epoch
  o.end_learning_rate = 1e-6

  config.init_from.kind = "pretrain"
  config.init_from.path = "/workdirs/videomae_b_pretrain"

  config.checkpoint.every_steps = 2000
  config.eval.every_steps = 10_000
  config.log.every_steps = 100
  return finalize(config)
