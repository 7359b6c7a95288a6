r"""ViViT-B/16x2, factorised encoder (Model 2), on Kinetics-400 (scenic-like recipe).

32 frames at stride 2, 224 x 224 crops, a spatial ViT-B/16 (12 layers)
initialised from an ImageNet-21k ViT-B/16 (central-frame tubelet inflation)
plus a fresh 4-layer temporal encoder; SGD with momentum, cosine decay with
linear warm-up, label smoothing, Mixup, gradient clipping; 30 epochs at a
global batch of 64. Evaluation: 4 temporal x 3 spatial views per video.
uint8 clips, normalised on the device (`data.dtype="uint8"`).

Data: DMVR-layout TFRecords (`tf.SequenceExample`, JPEG frames). Set the
file patterns and the ViT checkpoint (a model checkpoint dir, e.g. from
`vivit_jax.convert`) on the command line:

    python -m vivit_jax.main --config=configs/vivit_b_k400.py --workdir=$WORKDIR \
      --config.data.train_files='gs://BUCKET/kinetics400/train-*' \
      --config.data.eval_files='gs://BUCKET/kinetics400/validation-*' \
      --config.init_from.path=gs://BUCKET/vit_b16_in21k
"""

from vivit_jax.train.experiment import experiment_config, finalize

KINETICS400_TRAIN_VIDEOS = 215_000  # Varies with how many videos are still online.


def get_config():
  model = dict(name="vivit", variant="factorised_encoder", size="B", patch_size=16,
               tubelet_size=2, temporal_layers=4, num_classes=400, classifier="token",
               dropout_rate=0.0, attention_dropout_rate=0.0, drop_path_rate=0.1,
               dtype="bfloat16")
  config = experiment_config("train", model)

  d = config.data
  d.source = "tfrecord"
  d.train_files = "/data/kinetics400/train-*.tfrecord"
  d.eval_files = "/data/kinetics400/validation-*.tfrecord"
  d.num_classes = 400
  d.num_frames = 32
  d.stride = 2
  d.image_size = 224
  d.resize_short_side = 256
  d.crop = "random_resized"
  d.crop_area_range = (0.3, 1.0)
  d.flip = True
  d.eval_temporal_views = 4
  d.eval_spatial_views = 3
  d.shuffle_buffer = 1024
  d.dtype = "uint8"  # normalised on the device

  epochs = 30
  config.train.batch_size = 64
  steps_per_epoch = KINETICS400_TRAIN_VIDEOS // config.train.batch_size
  config.train.num_steps = epochs * steps_per_epoch
  config.train.label_smoothing = 0.1
  config.train.mixup_alpha = 0.1
  config.train.cutmix_alpha = 0.0

  o = config.optimizer
  o.name = "sgd"
  o.momentum = 0.9
  o.learning_rate = 0.1
  o.warmup_steps = int(2.5 * steps_per_epoch)
  o.end_learning_rate = 0.0
  o.weight_decay = 0.0
  o.clip_grad_norm = 1.0

  config.init_from.kind = "image_vit"
  config.init_from.path = "/checkpoints/vit_b16_imagenet21k"
  config.init_from.inflation = "central_frame"

  config.checkpoint.every_steps = 2000
  config.eval.every_steps = 10_000
  config.eval.batch_size = 64
  config.log.every_steps = 100
  return finalize(config)
