"""The experiment config: every key the main job reads, with defaults.

`experiment_config(mode, model)` = `default_train_config()` (mode, seed,
mesh, sharding, distributed, optimizer, train, model) + `data`
(`vivit_jax.data.default_data_config()`) + the sections below. The result is
locked: an override of a key that does not exist fails naming it.

  mode                 "train" (alias "finetune"), "pretrain" (train, insisting
                       on a pretraining model), "distill" (train a classifier
                       against `distill.teacher`) or "eval" (evaluate only: the
                       workdir's newest training checkpoint, else
                       `init_from`); the objective comes from the model
                       (`objectives.py`, where the mode is checked).

  checkpoint.*         see `vivit_jax/checkpoints/train.py`:
    every_steps        save every N steps [steps]; 0 = only at the end.
    keep               newest checkpoints kept.
    keep_best          best checkpoints kept by `best_metric`; 0 = off.
    best_metric        e.g. "eval/top1" (classification), "eval/loss" (pretrain).
    best_mode          "max" or "min".
    async_save         save in the background.
    save_on_sigterm    save at the next step boundary on SIGTERM/preemption.
    resume_with_changes  resume although keys that change the run (model.*,
                       optimizer.*, train.batch_size, ...) differ from the
                       workdir's config.json (`checkpoints/resume_config.py`).

  eval.*
    every_steps        evaluate every N steps [steps]; 0 = only at the end.
    batch_size         global eval batch [clips], split over processes.
    num_batches        stop after this many eval batches; 0 = the whole split.
    shuffle_frames     control: permute every clip's frames in time (a fixed
                       permutation per batch); a model that uses motion drops
                       toward chance.
    num_images         pretrain: clips in the original/masked/reconstructed PNG.

  log.*
    every_steps        console line + TensorBoard scalars every N steps.

  init_from.*          starting weights of a fresh (not resumed) run:
    kind               "" (random init), "pretrain" (this project's
                       pretraining workdir: its encoder, via
                       `transfer.encoder_to_classifier`), "model" (a model
                       checkpoint dir, e.g. a converted Hugging Face model:
                       a VideoMAE's encoder or a ViViT with identical names
                       and shapes), "image_vit" (a 2D ViT model checkpoint,
                       inflated with `inflation`).
    path               the workdir / model checkpoint dir.
    inflation          "central_frame" or "average" (kind="image_vit").

  distill.*            mode "distill" (`vivit_jax/train/distill.py`):
    teacher            model checkpoint dir of the frozen teacher.
    temperature        softmax temperature T of the soft targets.
    alpha              weight of the soft KL term (0 = the hard-label step).
    kind               "logits" or "logits+features".
    feature_weight     weight of the final-token MSE (kind "logits+features").

  debug.*
    sigkill_after_step >0: once the checkpoint of this step is on disk the
                       process SIGKILLs itself (crash-recovery tests).
    fail_eval_at_step  >0: the eval at this step raises (lost-work tests: the
                       step's checkpoint is on disk all the same).
"""

import importlib.util
import math
import os
from typing import Any, Mapping, Optional

import ml_collections

from vivit_jax.data.config import default_data_config
from vivit_jax.models import registry
from vivit_jax.models.config_defaults import model_config_defaults
from vivit_jax.models.embedding import INFLATION_METHODS
from vivit_jax.models.videomae import LOSSES
from vivit_jax.train import distill, objectives
from vivit_jax.train.defaults import default_train_config
from vivit_jax.train.optimizer import OPTIMIZERS
from vivit_jax.train.steps import NAN_POLICIES
from vivit_jax.common.errors import UserError

INIT_KINDS = ("", "pretrain", "model", "image_vit")


def experiment_config(mode: str, model: dict) -> ml_collections.ConfigDict:
  """An unlocked ConfigDict with every key at its default; see module docstring.

  Experiment config files call this, set their values and return
  `config.lock()`-ed results via `finalize`. `mode` and the model pick the default
  best-checkpoint metric (pretraining models: "eval/loss", else "eval/top1").

  Every field of the model class is in `c.model` at its default (so
  `--config.model.attention_impl=cudnn` works on every config); the values
  in `model` win.
  """
  c = default_train_config()
  c.mode = mode
  c.model = ml_collections.ConfigDict(_full_model_config(model))
  c.data = default_data_config()

  c.checkpoint = ml_collections.ConfigDict()
  c.checkpoint.every_steps = 1000
  c.checkpoint.keep = 3
  c.checkpoint.keep_best = 1
  name = dict(model).get("name", "vivit")
  pretraining = mode == "pretrain" or (name in registry.MODELS
                                       and registry.objective_of(name) == "pretrain")
  c.checkpoint.best_metric = "eval/loss" if pretraining else "eval/top1"
  c.checkpoint.best_mode = "min" if pretraining else "max"
  c.checkpoint.async_save = True
  c.checkpoint.save_on_sigterm = True
  c.checkpoint.resume_with_changes = False

  c.eval = ml_collections.ConfigDict()
  c.eval.every_steps = 1000
  c.eval.batch_size = 64
  c.eval.num_batches = 0
  c.eval.shuffle_frames = False
  c.eval.num_images = 2

  c.log = ml_collections.ConfigDict()
  c.log.every_steps = 50

  c.init_from = ml_collections.ConfigDict()
  c.init_from.kind = ""
  c.init_from.path = ""
  c.init_from.inflation = "central_frame"

  c.distill = distill.default_config()

  c.debug = ml_collections.ConfigDict()
  c.debug.sigkill_after_step = 0
  c.debug.fail_eval_at_step = 0
  return c


def _full_model_config(model: Mapping[str, Any]) -> dict:
  """`model` over every field of its model class at its default (flag-settable)."""
  model = dict(model)
  name = model.get("name", "vivit")
  full = {"name": name}
  if "size" in model:
    full["size"] = model["size"]
  full.update(model_config_defaults(name, model.get("size")))
  full.update(model)
  return full


def finalize(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Locks the config (adding an unknown key then fails naming it); returns it."""
  config.lock()
  return config


def _refuse(key: str, value, why: str, fix: str):
  raise UserError(f"{key}={value!r} {why}", f"--config.{key}", fix)


def _check_enum(config, key: str, choices) -> None:
  section, name = key.split(".")
  value = config[section][name]
  if value not in choices:
    _refuse(key, value, "is not a valid choice", f"use one of {', '.join(map(repr, choices))}")


def check_values(config) -> None:
  """Refuses (UserError) the values that cannot mean what the user wants."""
  train, opt, ckpt = config.train, config.optimizer, config.checkpoint
  if not isinstance(train.num_steps, int) or train.num_steps < 1:
    _refuse("train.num_steps", train.num_steps, "trains nothing",
            "set it to the number of steps to train, >= 1 (mode=eval evaluates only)")
  for key in ("train.batch_size", "eval.batch_size", "train.grad_accum_steps"):
    section, name = key.split(".")
    if config[section][name] < 1:
      _refuse(key, config[section][name], "must be >= 1", "set a positive integer")
  if train.batch_size % train.grad_accum_steps:
    _refuse("train.batch_size", train.batch_size,
            f"is not divisible by train.grad_accum_steps={train.grad_accum_steps}",
            "make the batch a multiple of the micro-batch count")
  for key in ("learning_rate", "end_learning_rate"):
    value = opt[key]
    if not math.isfinite(float(value)) or value < 0:
      _refuse(f"optimizer.{key}", value, "must be a finite number >= 0",
              "a learning rate of this size is e.g. 1e-3 (adamw) or 0.1 (sgd)")
  if opt.warmup_steps < 0:
    _refuse("optimizer.warmup_steps", opt.warmup_steps, "must be >= 0", "set 0 for no warm-up")
  if ckpt.keep < 1:
    _refuse("checkpoint.keep", ckpt.keep, "would delete every checkpoint, the newest too",
            "keep at least 1 (resuming needs the newest)")
  if ckpt.keep_best < 0:
    _refuse("checkpoint.keep_best", ckpt.keep_best, "must be >= 0", "set 0 to turn it off")
  if train.max_skipped_steps is not None and train.max_skipped_steps < 0:
    _refuse("train.max_skipped_steps", train.max_skipped_steps, "must be >= 0 or None",
            "set the most non-finite steps to skip before stopping")
  if not 0 <= train.label_smoothing < 1:
    _refuse("train.label_smoothing", train.label_smoothing, "must lie in [0, 1)",
            "e.g. 0.1, or 0 for none")
  _check_enum(config, "train.nan_policy", NAN_POLICIES)
  _check_enum(config, "optimizer.name", OPTIMIZERS)
  _check_enum(config, "checkpoint.best_mode", ("max", "min"))
  _check_enum(config, "init_from.kind", INIT_KINDS)
  _check_enum(config, "init_from.inflation", INFLATION_METHODS)
  if "reconstruction_loss" in train:
    _check_enum(config, "train.reconstruction_loss", LOSSES)
  for section in ("checkpoint", "eval", "log"):
    if config[section].every_steps < 0:
      _refuse(f"{section}.every_steps", config[section].every_steps, "must be >= 0",
              "set 0 for only at the end" if section != "log" else "set a positive integer")
  if config.log.every_steps == 0:
    _refuse("log.every_steps", 0, "must be positive", "e.g. 50")
  if config.eval.num_batches < 0:
    _refuse("eval.num_batches", config.eval.num_batches, "must be >= 0",
            "set 0 for the whole split")


def validate(config) -> None:
  """Raises ValueError (a `UserError` for the checks here) naming the first bad key."""
  check_values(config)
  objectives.check_mode(config, config.model)
  if config.init_from.kind and not config.init_from.path:
    raise UserError(f"init_from.kind={config.init_from.kind!r} needs a path",
                    "--config.init_from.path", "pass the workdir or model checkpoint "
                    "to start from, or set --config.init_from.kind= for random init")
  objective = registry.objective_of(config.model)
  splits = tuple(config.model.get("class_splits", None) or ())
  if objective == "classification" and splits:
    if config.data.num_classes != math.prod(splits):
      raise UserError(f"data.num_classes={config.data.num_classes} must be the product of "
                      f"model.class_splits={splits}", "--config.data.num_classes",
                      f"set it to {math.prod(splits)} (labels combine the heads'; see "
                      "vivit_jax/train/multihead.py)")
  elif objective == "classification" and "num_classes" in config.model:
    if config.model.num_classes != config.data.num_classes:
      raise UserError(f"model.num_classes={config.model.num_classes} differs from "
                      f"data.num_classes={config.data.num_classes}",
                      "--config.model.num_classes",
                      "set both to the number of classes of the data")
  distill.validate(config)


def load_config_file(path: str, overrides: Optional[Mapping[str, Any]] = None
                     ) -> ml_collections.ConfigDict:
  """`get_config()` of the config file at `path`, with dotted-key overrides.

  `path` may end in `:ARG` (`configs/vivit.py:L_fe_k400`), which calls
  `get_config(ARG)`, as `--config=path:ARG` does.

  The in-process equivalent of `--config=path --config.a.b=value`: an
  override of a key the config lacks fails naming it.
  """
  path, _, arg = path.partition(":")
  name = os.path.splitext(os.path.basename(path))[0]
  spec = importlib.util.spec_from_file_location(f"vivit_jax_config_{name}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(arg) if arg else module.get_config()
  return apply_overrides(config, overrides or {})


def apply_overrides(config: ml_collections.ConfigDict,
                    overrides: Mapping[str, Any]) -> ml_collections.ConfigDict:
  """Sets dotted keys (`{"train.num_steps": 10}`) in place; returns `config`."""
  for key, value in overrides.items():
    node = config
    *parents, leaf = key.split(".")
    for part in parents:
      node = node[part]
    node[leaf] = value
  return config

