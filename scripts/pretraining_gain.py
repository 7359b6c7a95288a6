r"""What masked pretraining buys: fine-tuning from random init vs the pretrained encoder.

    python scripts/pretraining_gain.py                  # the default (small) run
    python scripts/pretraining_gain.py --seeds=5 --pretrain_steps=3000 \
        --num_train=4096 --out=demo_workdir/pretraining_gain_big.json

The data are the demo world's clips (`vivit_jax.data.demo.synthetic`, the
geometry of `configs/demo_common.py`: 16 frames of 64 x 64 read as 8 frames
(every 2nd) at 32 x 32, 2 x 2 mean-pooled), generated in memory: no
TFRecords, so many short runs fit in one process. Models, losses, optimiser
recipes and the jitted train / eval steps are the project's own
(`vivit_jax.train.steps`), built from `configs/demo_pretrain.py` and
`configs/demo_finetune.py` with the overrides below.

1. Masked pretraining (`--mask_types`, each trained `--pretrain_steps` on
   all training clips, labels unused); prints the held-out normalised-pixel
   loss and the plain-pixel MSE against copying each hidden tubelet's mean.
2. The same ViViT fine-tuned on the labels of the first 5%, 20% and 100% of
   the training clips (`--fractions`), from random init and from the
   encoder of the first mask type's run, `--seeds` seeds each (the seed sets
   init, data order and augmentation), same steps and recipe for both.
   Each run is evaluated on the held-out clips, and again with every clip's
   frames shuffled in time (the motion control).

Prints a table (mean +- std top-1 over seeds, the gain in points, chance,
the shuffled control) and writes every number to `--out` (JSON).
"""

import argparse
import json
import os
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "configs"))

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from vivit_jax import checkpoints  # noqa: E402
from vivit_jax.data.demo import synthetic  # noqa: E402
from vivit_jax.models import build_model, embedding, registry, transfer  # noqa: E402
from vivit_jax.train import device_preprocess, experiment, partitioning, steps  # noqa: E402
from vivit_jax.train.evaluation import linear_probe as linear_probe_lib  # noqa: E402
from vivit_jax.train.mesh import create_mesh  # noqa: E402
from vivit_jax.train.optimizer import make_optimizer  # noqa: E402

import demo_common  # noqa: E402  pylint: disable=wrong-import-order

TRAIN_SEED, EVAL_SEED = 1000, 1001  # not the TFRecords' seeds (0, 1)


def make_clips(num_videos: int, seed: int, num_classes: int = demo_common.NUM_CLASSES):
  """`(N, 2, T, H, W, 3)` uint8 clips (the 2 temporal offsets of the stride)
  and `(N,)` labels, at the demo's training geometry."""
  stride = demo_common.FRAME_STRIDE
  factor = demo_common.SOURCE_SIZE // demo_common.IMAGE_SIZE
  clips, labels = [], []
  for video, label in synthetic.iterate_demo_videos(
      num_videos, demo_common.SOURCE_FRAMES, demo_common.SOURCE_SIZE, num_classes, seed):
    t, h, w, c = video.shape
    pooled = video.reshape(t, h // factor, factor, w // factor, factor, c).mean((2, 4))
    views = [pooled[o::stride][:demo_common.NUM_FRAMES] for o in range(stride)]
    clips.append(np.rint(np.stack(views)).astype(np.uint8))
    labels.append(label)
  return np.stack(clips), np.asarray(labels, np.int32)


def load_config(name: str, overrides: dict):
  """`configs/<name>.py`'s config (`name` may end in `:VARIANT`) with overrides."""
  name, _, variant = name.partition(":")
  path = os.path.join(REPO, "configs", f"{name}.py") + (f":{variant}" if variant else "")
  return experiment.load_config_file(path, overrides)


class Trainer:
  """Model, jitted steps and a train state of one config on a 1-device mesh.

  The steps are compiled once per config; `reset` starts a fresh state
  (another seed, another init) without compiling them again.
  """

  def __init__(self, config):
    self.config = config
    self.model = build_model(config.model)
    self.mesh = create_mesh(config.mesh, jax.devices()[:1])
    self.shape = (demo_common.NUM_FRAMES, demo_common.IMAGE_SIZE, demo_common.IMAGE_SIZE, 3)
    self.state, self.shardings = steps.init_train_state(config, self.model, self.mesh, 0,
                                                        self.shape)
    self.tx, _ = make_optimizer(config, self.state.params)
    self.train_step = steps.make_train_step(config, self.model, self.mesh, self.shardings)
    self.eval_step = steps.make_eval_step(config, self.model, self.mesh, self.shardings)
    self.sharding = partitioning.batch_sharding(self.mesh)
    model, shape = self.model, self.shape

    def init_params(key):
      params_key, dropout_key, mask_key = jax.random.split(key, 3)
      inputs = registry.dummy_inputs(model, shape, mask_key)
      return nn.unbox(model.init({"params": params_key, "dropout": dropout_key}, *inputs,
                                 train=False)["params"])

    self._init_params = jax.jit(init_params, out_shardings=self.shardings.params)
    self.grid = embedding.token_grid(shape, config.model.patch_size, config.model.tubelet_size)
    self.num_patch_tokens = int(np.prod(self.grid))

  def reset(self, seed: int, encoder=None) -> None:
    """A fresh state: params from `seed`, the encoder of `encoder` (MAE
    params) copied in when given, new optimiser state, step 0."""
    params = self._init_params(jax.random.key(seed))
    if encoder is not None:
      params = jax.device_put(transfer.encoder_to_classifier(params, encoder),
                              self.shardings.params)
    self.state = self.state.replace(
        step=jnp.zeros((), jnp.int32), params=params, opt_state=self.tx.init(params),
        rng=jax.random.key_data(jax.random.fold_in(jax.random.key(seed), 1)))

  def features(self, clips, batch_size: int = 64) -> np.ndarray:
    """Frozen-encoder features of `clips[:, 0]`: `(N, (nt + 1) * D)` float32,
    the mean of the final patch tokens overall and per time index."""
    model = self.model

    @jax.jit
    def encode(params, video):
      video = device_preprocess.prepare_batch({"video": video}, self.config)["video"]
      _, state = model.apply({"params": params}, video, train=False, mutable=["intermediates"])
      tokens = state["intermediates"]["tokens"][0]
      tokens = tokens[:, tokens.shape[1] - self.num_patch_tokens:]
      per_time = tokens.reshape(tokens.shape[0], self.grid[0], -1, tokens.shape[-1]).mean(2)
      return jnp.concatenate([tokens.mean(1), per_time.reshape(tokens.shape[0], -1)], -1)

    out = [np.asarray(encode(self.state.params, clips[i:i + batch_size, 0]))
           for i in range(0, len(clips), batch_size)]
    return np.concatenate(out)

  def put(self, batch):
    return jax.device_put(batch, self.sharding)

  def fit(self, clips, labels, num_steps: int, batch_size: int, seed: int, log_every=0):
    """Trains on random batches (random temporal offset per clip); returns losses."""
    rng = np.random.default_rng(seed)
    losses, started = [], time.perf_counter()
    for step in range(num_steps):
      index = rng.integers(0, len(clips), batch_size)
      offset = rng.integers(0, clips.shape[1], batch_size)
      batch = {"video": clips[index, offset]}
      if labels is not None:
        batch["label"] = labels[index]
      self.state, metrics = self.train_step(self.state, self.put(batch))
      losses.append(float(metrics["loss"]))
      if log_every and (step + 1) % log_every == 0:
        print(f"    step {step + 1:5d} loss {np.mean(losses[-log_every:]):.4f} "
              f"({time.perf_counter() - started:.0f}s)", flush=True)
    return losses

  def evaluate(self, clips, labels=None, shuffle_frames: bool = False, batch_size=64):
    """Means of the eval step's scalar metrics over `clips[:, 0]`."""
    rng = np.random.default_rng(0)
    totals, count = {}, 0
    for first in range(0, len(clips), batch_size):
      video = clips[first:first + batch_size, 0]
      if shuffle_frames:
        video = video[:, rng.permutation(video.shape[1])]
      batch = {"video": video}
      if labels is not None:
        batch["label"] = labels[first:first + batch_size]
      metrics = self.eval_step(self.state, self.put(batch))
      n = len(video)
      for key, value in metrics.items():
        if np.ndim(value) == 0 and key != "num_examples":
          totals[key] = totals.get(key, 0.0) + float(value) * n
      count += n
    return {key: value / count for key, value in totals.items()}


def linear_probe(args, encoder, train_clips, train_labels, eval_clips, eval_labels, log):
  """Frozen encoders, a linear classifier on their features: random init vs pretrained."""
  trainer = Trainer(load_config("demo_finetune", finetune_overrides(args, 1, "random")))
  rng = np.random.default_rng(0)
  shuffled_eval = eval_clips[:, :, rng.permutation(eval_clips.shape[2])]
  runs = []
  for seed in range(args.seeds):
    for init in ("random", "pretrained"):
      trainer.reset(seed, encoder if init == "pretrained" else None)
      train_x = trainer.features(train_clips)
      eval_x, shuffled_x = trainer.features(eval_clips), trainer.features(shuffled_eval)
      for fraction in args.fractions:
        count = max(demo_common.NUM_CLASSES, int(round(fraction * len(train_clips))))
        pick = np.random.default_rng(seed).permutation(len(train_clips))[:count]
        predict = lambda x: linear_probe_lib.softmax_regression(
            train_x[pick], train_labels[pick], x, demo_common.NUM_CLASSES)
        top1 = float((predict(eval_x) == eval_labels).mean())
        shuffled = float((predict(shuffled_x) == eval_labels).mean())
        runs.append({"fraction": fraction, "labelled_clips": count, "seed": seed,
                     "init": init, "top1": top1, "top1_shuffled": shuffled})
        log(f"linear probe {100 * fraction:5.1f}% seed {seed} {init:10s}: top-1 "
            f"{100 * top1:5.1f}% (frames shuffled {100 * shuffled:5.1f}%)")
  return runs


def table_rows(runs, fractions):
  rows = []
  for fraction in fractions if runs else ():
    pick = lambda init, key: [r[key] for r in runs
                              if r["fraction"] == fraction and r["init"] == init]
    gain = 100 * (np.mean(pick("pretrained", "top1")) - np.mean(pick("random", "top1")))
    rows.append({"fraction": fraction,
                 "labelled_clips": [r for r in runs if r["fraction"] == fraction][0][
                     "labelled_clips"],
                 "random_top1": pick("random", "top1"),
                 "pretrained_top1": pick("pretrained", "top1"),
                 "random_shuffled_top1": pick("random", "top1_shuffled"),
                 "pretrained_shuffled_top1": pick("pretrained", "top1_shuffled"),
                 "gain_points": float(gain)})
  return rows


def pretrain_overrides(args, mask_type: str) -> dict:
  overrides = {"train.num_steps": args.pretrain_steps, "model.mask_type": mask_type,
               "optimizer.learning_rate": args.pretrain_lr,
               "optimizer.warmup_steps": max(1, args.pretrain_steps // 20)}
  if mask_type != "future":
    overrides["model.mask_ratio"] = args.mask_ratio
  for setting in args.pretrain_set:
    key, _, value = setting.partition("=")
    overrides[key] = json.loads(value)
  return overrides


def finetune_overrides(args, num_steps: int, init: str) -> dict:
  overrides = {"train.num_steps": num_steps, "init_from.kind": "", "init_from.path": "",
               "optimizer.learning_rate": args.finetune_lr,
               "optimizer.warmup_steps": max(1, num_steps // 10)}
  if init == "pretrained" and args.layer_decay:
    overrides["optimizer.layer_decay"] = args.layer_decay
  for setting in args.finetune_set:
    key, _, value = setting.partition("=")
    overrides[key] = json.loads(value)
  return overrides


def mean_std(values) -> str:
  values = 100 * np.asarray(values, np.float64)
  return f"{values.mean():5.1f} +- {values.std():4.1f}"


def run(args) -> dict:
  start = time.perf_counter()
  log = lambda text: print(f"[{time.perf_counter() - start:6.0f}s] {text}", flush=True)
  train_clips, train_labels = make_clips(args.num_train, TRAIN_SEED)
  eval_clips, eval_labels = make_clips(args.num_eval, EVAL_SEED)
  log(f"{len(train_clips)} train / {len(eval_clips)} eval clips of {train_clips.shape[2:]}")

  pretraining, encoder = {}, None
  if args.load_encoder:
    with np.load(args.load_encoder) as stored:
      encoder = checkpoints.unflatten_params({k: stored[k] for k in stored.files})
    log(f"pretrained encoder from {args.load_encoder}")
  for mask_type in args.mask_types.split(",") if not args.load_encoder else ():
    config = load_config(args.pretrain_config, pretrain_overrides(args, mask_type))
    trainer = Trainer(config)
    losses = trainer.fit(train_clips, None, args.pretrain_steps, config.train.batch_size,
                         seed=0, log_every=args.log_every)
    result = trainer.evaluate(eval_clips)
    result["train_loss_curve"] = [float(np.mean(losses[i:i + 50]))
                                  for i in range(0, len(losses), 50)]
    pretraining[mask_type] = result
    log(f"pretrain {mask_type:6s}: held-out loss {result['loss']:.4f}, "
        f"pixel MSE {result['pixel_mse']:.5f} vs copy-the-mean "
        f"{result['mean_baseline_pixel_mse']:.5f}"
        + (f", forecast PSNR {result['psnr']:.2f} dB vs copy-last {result['copy_last_psnr']:.2f}"
           if "psnr" in result else ""))
    if encoder is None:
      encoder = jax.device_get(trainer.state.params)
      if args.save_encoder:
        np.savez(args.save_encoder, **checkpoints.flatten_params(encoder))

  runs = []
  trainers = {}
  for fraction in args.fractions if args.finetune_steps else ():
    count = max(demo_common.NUM_CLASSES, int(round(fraction * len(train_clips))))
    for seed in range(args.seeds):
      for init in ("random", "pretrained"):
        overrides = finetune_overrides(args, args.finetune_steps, init)
        key = json.dumps(overrides, sort_keys=True)
        if key not in trainers:
          trainers[key] = Trainer(load_config("demo_finetune", overrides))
        trainer = trainers[key]
        trainer.reset(seed, encoder if init == "pretrained" else None)
        trainer.fit(train_clips[:count], train_labels[:count], args.finetune_steps,
                    trainer.config.train.batch_size, seed=seed)
        top1 = trainer.evaluate(eval_clips, eval_labels)["accuracy"]
        shuffled = trainer.evaluate(eval_clips, eval_labels, shuffle_frames=True)["accuracy"]
        runs.append({"fraction": fraction, "labelled_clips": count, "seed": seed,
                     "init": init, "top1": top1, "top1_shuffled": shuffled})
        log(f"fine-tune {100 * fraction:5.1f}% seed {seed} {init:10s}: top-1 {100 * top1:5.1f}%"
            f" (frames shuffled {100 * shuffled:5.1f}%)")

  chance = 1.0 / demo_common.NUM_CLASSES
  rows = table_rows(runs, args.fractions)
  probe = []
  if args.probe and encoder is not None and args.fractions:
    probe = linear_probe(args, encoder, train_clips, train_labels, eval_clips, eval_labels,
                         log)
  return {"args": vars(args), "chance": chance, "num_eval": len(eval_clips),
          "pretraining": pretraining, "rows": rows, "runs": runs,
          "probe_rows": table_rows(probe, args.fractions) if probe else [], "probe_runs": probe,
          "seconds": time.perf_counter() - start}


def _print_rows(title: str, rows) -> None:
  print(title)
  print(f"{'labels':>12s} | {'random init':>14s} | {'pretrained':>14s} | {'gain':>6s} | "
        f"{'shuffled: random':>16s} | {'pretrained':>14s}")
  for row in rows:
    print(f"{100 * row['fraction']:4.0f}% ({row['labelled_clips']:4d}) | "
          f"{mean_std(row['random_top1']):>14s} | {mean_std(row['pretrained_top1']):>14s} | "
          f"{row['gain_points']:+6.1f} | {mean_std(row['random_shuffled_top1']):>16s} | "
          f"{mean_std(row['pretrained_shuffled_top1']):>14s}")


def print_table(payload: dict) -> None:
  args = payload["args"]
  encoder = (f"encoder from {args['load_encoder']}" if args["load_encoder"] else
             f"encoder pretrained {args['pretrain_steps']} steps "
             f"({args['mask_types'].split(',')[0]} masking, {args['pretrain_config']})")
  print(f"\ntop-1 on {payload['num_eval']} held-out clips, {args['seeds']} seeds (mean +- std); "
        f"{encoder}; chance {100 * payload['chance']:.1f}%")
  if payload["rows"]:
    _print_rows(f"full fine-tuning, {args['finetune_steps']} steps, same recipe for both:",
                payload["rows"])
  if payload["probe_rows"]:
    _print_rows("linear probe on the frozen encoder (random labelled subset per seed):",
                payload["probe_rows"])
  for mask_type, result in payload["pretraining"].items():
    print(f"pretraining {mask_type:6s}: held-out loss {result['loss']:.4f}; "
          f"pixel MSE {result['pixel_mse']:.5f} vs copy-the-mean "
          f"{result['mean_baseline_pixel_mse']:.5f}"
          + (f"; forecast PSNR {result['psnr']:.2f} dB vs copy-last "
             f"{result['copy_last_psnr']:.2f}, per-patch mean {result['patch_mean_psnr']:.2f}"
             if "psnr" in result else ""))


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--seeds", type=int, default=3)
  parser.add_argument("--fractions", type=lambda s: [float(f) for f in s.split(",") if f],
                      default=[0.05, 0.2, 1.0], help="empty: pretraining only")
  parser.add_argument("--num_train", type=int, default=1024)
  parser.add_argument("--num_eval", type=int, default=256)
  parser.add_argument("--mask_types", default="random",
                      help="comma-separated; the first one's encoder is fine-tuned")
  parser.add_argument("--mask_ratio", type=float, default=0.75)
  parser.add_argument("--pretrain_steps", type=int, default=600)
  parser.add_argument("--pretrain_lr", type=float, default=1e-3)
  parser.add_argument("--pretrain_config", default="demo_pretrain",
                      help="the pretraining config, e.g. demo_pretrain:forecast (raw-pixel "
                           "targets, 2-layer 128-wide decoder)")
  parser.add_argument("--pretrain_set", action="append", default=[],
                      help="KEY=JSON_VALUE override of every pretraining config, e.g. "
                           "train.norm_pix_loss=false (repeatable)")
  parser.add_argument("--finetune_set", action="append", default=[],
                      help="KEY=JSON_VALUE override of every fine-tuning (and probe) config, "
                           "e.g. model.classifier='\"gap\"' (repeatable)")
  parser.add_argument("--finetune_steps", type=int, default=200, help="0: no fine-tuning")
  parser.add_argument("--finetune_lr", type=float, default=5e-4)
  parser.add_argument("--layer_decay", type=float, default=0.0,
                      help="layer-wise lr decay for the pretrained init; 0 = off")
  parser.add_argument("--probe", type=int, default=1,
                      help="1: also a linear probe on the frozen encoders (cheap)")
  parser.add_argument("--save_encoder", default="",
                      help=".npz to write the first pretraining run's params to")
  parser.add_argument("--load_encoder", default="",
                      help="a --save_encoder .npz: skip pretraining, fine-tune from it")
  parser.add_argument("--log_every", type=int, default=0)
  parser.add_argument("--out", default=os.path.join(REPO, "demo_workdir",
                                                    "pretraining_gain.json"))
  return parser.parse_args(argv)


def main(argv=None) -> dict:
  args = parse_args(argv)
  payload = run(args)
  print_table(payload)
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out, "w") as f:
    json.dump(payload, f, indent=1)
  print(f"wrote {args.out} ({payload['seconds']:.0f}s)")
  return payload


if __name__ == "__main__":
  main()
