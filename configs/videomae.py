r"""VideoMAE (Tong et al., NeurIPS 2022): the model zoo's rows, pretrain + fine-tune.

    # 1. masked pretraining
    python -m vivit_jax.main --config=configs/videomae.py:B_pt_k400 --workdir=$PT \
      --config.data.train_files='/data/kinetics400/train-*.tfrecord' \
      --config.data.eval_files='/data/kinetics400/validation-*.tfrecord'
    # 2. fine-tuning from that workdir
    python -m vivit_jax.main --config=configs/videomae.py:B_ft_k400 --workdir=$FT \
      --config.init_from.path=$PT --config.data.train_files=... --config.data.eval_files=...

ROW          stage     backbone data  epochs  global batch (videos)  zoo top-1 (views)
S_pt_k400    pretrain  ViT-S    K400  1600    1024 (32 GPUs x 32)    -
B_pt_k400    pretrain  ViT-B    K400  1600    2048 (64 GPUs x 32)    -
L_pt_k400    pretrain  ViT-L    K400  1600     512 (64 GPUs x 8)     -
H_pt_k400    pretrain  ViT-H    K400  1600    1024 (64 GPUs x 16)    -
B_pt_ssv2    pretrain  ViT-B    SSv2  2400    2048 (64 GPUs x 32)    -
S_ft_k400    fine-tune ViT-S    K400   150     384 (32 GPUs x 12)    79.0 (16x5x3)
B_ft_k400    fine-tune ViT-B    K400    75     384 (64 GPUs x 6)     81.5 (16x5x3)
L_ft_k400    fine-tune ViT-L    K400    35     128 (64 GPUs x 2)     85.2 (16x5x3)
H_ft_k400    fine-tune ViT-H    K400    50     512 (64 GPUs x 8)     86.6 (16x5x3)
B_ft_ssv2    fine-tune ViT-B    SSv2    30     384 (64 GPUs x 6)     70.8 (16x2x3)

Source: MCG-NJU/VideoMAE `MODEL_ZOO.md` (the K400 table's 1600-epoch rows,
SSv2's 2400-epoch ViT-B row) and the `scripts/{kinetics,ssv2}/...` each row
links, with `run_mae_pretraining.py` / `run_class_finetuning.py` defaults for
what a script leaves out. GPUs: V100s (8 per node; the scripts' `--nnodes`);
the zoo gives no training time. The fine-tuning model is ViViT's
`spatio_temporal` variant with VideoMAE's head (mean pool + fc_norm,
sinusoidal positions).

Pretraining: 16 frames x 224, tube masking 90%, normalised-pixel targets,
AdamW (0.9, 0.95), lr 1.5e-4 x batch / 256 (the end lr 1e-5 x batch / 256),
weight decay 0.05, 40 warm-up epochs, cosine; multi-scale crops
(1, .875, .75, .66), no flips; frame stride 4 (K400) or 2 (SSv2).
Fine-tuning: AdamW (0.9, 0.999), lr (script value) x batch / 256, end lr
1e-6 x batch / 256, weight decay 0.05, layer decay 0.75, 5 warm-up epochs,
drop path 0.1 (ViT-H 0.2, head dropout 0.5), label smoothing 0.1, Mixup 0.8 /
CutMix 1.0, RandAugment (4 ops, magnitude 7), repeated augmentation 2 (two
clips per video: `data.clips_per_video=2`, so `train.batch_size` counts 2x
the zoo's videos); K400 dense sampling at stride 4 and 5x3 views of
224-short-side frames, SSv2 TSN segment sampling, no flips, 2x3 views.
Every row feeds uint8 clips, normalised on the device (`data.dtype="uint8"`).
Pretraining rows draw `data.clips_per_video=2` clips per decoded video
(repeated sampling, as MAE-ST pretrains with 4: a video file is decoded, a
TFRecord read, once for both clips): their batch counts clips (the zoo's
figure, now from half as many videos) and an epoch counts clips, so lr,
steps and clips seen are the zoo's.
Not reproduced: random erasing (`--reprob 0.25`; this pipeline has no such
op) and VideoMAE's head init scale 0.001 (our head starts at zero).
"""

import ml_collections

from vivit_jax.train.experiment import experiment_config, finalize

DATASETS = {
    # VideoMAE's K400 train list (~240k videos; varies with availability).
    "k400": dict(num_classes=400, train_videos=240_000, name="kinetics400",
                 pretrain_stride=4, sampling="random", flip=True, views=(5, 3)),
    "ssv2": dict(num_classes=174, train_videos=168_913, name="ssv2",
                 pretrain_stride=2, sampling="segment", flip=False, views=(2, 3)),
}

DECODERS = {  # decoder width, heads, depth (modeling_pretrain.py + the scripts)
    "S": (192, 3, 4), "B": (384, 6, 4), "L": (512, 8, 12), "H": (640, 8, 12),
}

ZOO = "MCG-NJU/VideoMAE MODEL_ZOO.md"

ROWS = {
    "S_pt_k400": dict(stage="pretrain", size="S", data="k400", epochs=1600, videos=1024,
                      gpus=32),
    "B_pt_k400": dict(stage="pretrain", size="B", data="k400", epochs=1600, videos=2048,
                      gpus=64),
    "L_pt_k400": dict(stage="pretrain", size="L", data="k400", epochs=1600, videos=512,
                      gpus=64),
    "H_pt_k400": dict(stage="pretrain", size="H", data="k400", epochs=1600, videos=1024,
                      gpus=64, remat_policy="full"),
    "B_pt_ssv2": dict(stage="pretrain", size="B", data="ssv2", epochs=2400, videos=2048,
                      gpus=64),
    "S_ft_k400": dict(stage="finetune", size="S", data="k400", epochs=150, videos=384,
                      gpus=32, base_lr=5e-4, pretrain="S_pt_k400",
                      paper=dict(metric="top-1", value=79.0, views="16x5x3", gflops=57,
                                 params_m=22, source=ZOO)),
    "B_ft_k400": dict(stage="finetune", size="B", data="k400", epochs=75, videos=384,
                      gpus=64, base_lr=5e-4, pretrain="B_pt_k400",
                      paper=dict(metric="top-1", value=81.5, views="16x5x3", gflops=180,
                                 params_m=87, source=ZOO)),
    "L_ft_k400": dict(stage="finetune", size="L", data="k400", epochs=35, videos=128,
                      gpus=64, base_lr=2e-3, pretrain="L_pt_k400",
                      paper=dict(metric="top-1", value=85.2, views="16x5x3", gflops=597,
                                 params_m=305, source=ZOO)),
    "H_ft_k400": dict(stage="finetune", size="H", data="k400", epochs=50, videos=512,
                      gpus=64, base_lr=1e-3, pretrain="H_pt_k400", drop_path_rate=0.2,
                      head_dropout_rate=0.5, remat_policy="full",
                      paper=dict(metric="top-1", value=86.6, views="16x5x3", gflops=1192,
                                 params_m=633, source=ZOO)),
    "B_ft_ssv2": dict(stage="finetune", size="B", data="ssv2", epochs=30, videos=384,
                      gpus=64, base_lr=5e-4, pretrain="B_pt_ssv2",
                      paper=dict(metric="top-1", value=70.8, views="16x2x3", gflops=180,
                                 params_m=87, source=ZOO)),
}
# GFLOPs / params of the fine-tuned ViTs: VideoMAE paper, Table 6 (K400).

REPEATED_AUG = 2  # clips per video in fine-tuning (`--num_sample 2`)
REPEATED_SAMPLING = 2  # clips per decoded video in pretraining


def row_names():
  return tuple(ROWS)


def model_config(row: str) -> dict:
  """The row's `config.model` as a plain dict."""
  spec = ROWS[row]
  ds = DATASETS[spec["data"]]
  remat = spec.get("remat_policy", "none")
  if spec["stage"] == "pretrain":
    width, heads, depth = DECODERS[spec["size"]]
    return dict(name="videomae", size=spec["size"], patch_size=16, tubelet_size=2,
                decoder_hidden_size=width, decoder_layers=depth, decoder_heads=heads,
                decoder_mlp_dim=4 * width, pos_embedding="sinusoid", mask_type="tube",
                mask_ratio=0.9, drop_path_rate=0.0, dtype="bfloat16", remat_policy=remat)
  return dict(name="vivit", variant="spatio_temporal", size=spec["size"], patch_size=16,
              tubelet_size=2, num_classes=ds["num_classes"], classifier="gap",
              fc_norm=True, pos_embedding="sinusoid",
              drop_path_rate=spec.get("drop_path_rate", 0.1),
              head_dropout_rate=spec.get("head_dropout_rate", 0.0), dtype="bfloat16",
              remat_policy=remat)


def get_config(arg=None) -> ml_collections.ConfigDict:
  """The locked experiment config of row `arg` (see the module docstring)."""
  if arg not in ROWS:
    raise ValueError(f"configs/videomae.py needs a row: --config=configs/videomae.py:ROW "
                     f"with ROW one of {list(ROWS)}, got {arg!r}")
  spec = ROWS[arg]
  ds = DATASETS[spec["data"]]
  pretrain = spec["stage"] == "pretrain"
  config = experiment_config("pretrain" if pretrain else "finetune", model_config(arg))

  d = config.data
  d.source = "tfrecord"
  d.train_files = f"/data/{ds['name']}/train-*.tfrecord"
  d.eval_files = f"/data/{ds['name']}/validation-*.tfrecord"
  d.num_classes = ds["num_classes"]
  d.num_frames = 16
  d.image_size = 224
  d.shuffle_buffer = 1024
  d.dtype = "uint8"  # normalised on the device
  videos = spec["videos"]
  steps_per_epoch = ds["train_videos"] // videos
  o = config.optimizer
  o.name = "adamw"
  o.weight_decay = 0.05
  if pretrain:
    d.stride = ds["pretrain_stride"]
    d.crop = "multi_scale"
    d.crop_scales = (1.0, 0.875, 0.75, 0.66)
    d.flip = False  # DataAugmentationForVideoMAE: multi-scale crop only.
    d.clips_per_video = REPEATED_SAMPLING  # batch = the zoo's clips, from fewer videos
    config.train.batch_size = videos
    config.train.norm_pix_loss = True
    o.learning_rate = 1.5e-4 * videos / 256
    o.end_learning_rate = 1e-5 * videos / 256
    o.b1, o.b2 = 0.9, 0.95
    o.warmup_steps = 40 * steps_per_epoch
    config.eval.num_batches = 20  # reconstruction loss on a fixed subset
    config.checkpoint.every_steps = 5000
    config.eval.every_steps = 20_000
  else:
    d.stride = 4
    d.sampling = ds["sampling"]
    d.clips_per_video = REPEATED_AUG
    d.crop = "random_resized"
    d.crop_area_range = (0.08, 1.0)
    d.crop_aspect_range = (0.75, 4.0 / 3.0)
    d.flip = ds["flip"]
    d.rand_augment_layers = 4
    d.rand_augment_magnitude = 7
    d.eval_temporal_views, d.eval_spatial_views = ds["views"]
    d.eval_resize_short_side = 224
    config.train.batch_size = REPEATED_AUG * videos
    config.train.label_smoothing = 0.1
    config.train.mixup_alpha = 0.8
    config.train.cutmix_alpha = 1.0
    o.learning_rate = spec["base_lr"] * videos / 256
    o.end_learning_rate = 1e-6 * videos / 256
    o.b1, o.b2 = 0.9, 0.999
    o.layer_decay = 0.75
    o.warmup_steps = 5 * steps_per_epoch
    config.init_from.kind = "pretrain"
    config.init_from.path = f"/workdirs/videomae_{spec['pretrain']}"
    config.checkpoint.every_steps = 2000
    config.eval.every_steps = 10_000
  config.train.num_steps = spec["epochs"] * steps_per_epoch
  config.log.every_steps = 100
  return finalize(config)
