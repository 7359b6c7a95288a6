"""Defaults of every config key the training library reads.

`default_train_config()` returns a ConfigDict holding all of them, so a typo
in an override (`config_flags`) or a read of a missing key fails naming the
key. Experiment configs start from it, replace `model` and add their own
sections (checkpoint, eval, log, data); `config.lock()` afterwards makes
adding unknown keys fail too.

Sections and keys (units in brackets):
  mode                "train" (alias "finetune"; "pretrain" = train a pretraining
                      model; "distill" = train against a frozen teacher,
                      `distill.py`) or "eval"; the objective comes from the model
                      (`objectives.py`).
  seed                int, the base PRNG seed.
  mesh.shape          sizes of ("data", "fsdp", "tensor"); -1 = the rest.
  sharding.rules      ((logical_name, mesh_axes), ...); see partitioning.py.
  sharding.constrain_activations  bind the models' activation constraints
                      (default True; see partitioning.py).
  distributed.*       coordinator_address, num_processes, process_id,
                      local_device_ids, auto; see distributed.py.
  optimizer.name      "adamw" or "sgd" (momentum `optimizer.momentum`).
  optimizer.learning_rate      peak learning rate for one global batch.
  optimizer.warmup_steps       linear warm-up from 0 [steps].
  optimizer.end_learning_rate  value reached by the cosine at train.num_steps.
  optimizer.b1, b2, eps        Adam moments and epsilon.
  optimizer.momentum           SGD momentum (0 = plain SGD).
  optimizer.weight_decay       decoupled weight decay (times the lr); not
                               applied to biases, norms, position embeddings,
                               CLS/mask tokens or any 1-D parameter.
  optimizer.clip_grad_norm     clip by global norm; None or 0 = off.
  optimizer.layer_decay        layer-wise lr decay factor; None or 1.0 = off.
  optimizer.ema_decay          EMA of params kept in the state; None = off.
  train.num_steps              total steps (end of the cosine).
  train.batch_size             global batch (over all processes and micro-batches).
  train.grad_accum_steps       micro-batches per step (scan inside the step).
  train.label_smoothing        in [0, 1).
  train.mixup_alpha, cutmix_alpha  Beta(alpha, alpha) mixing; 0 = off.
  train.mix_prob               probability a batch is mixed at all.
  train.nan_policy             "stop" (caller raises via check_finite) or
                               "skip" (keep going); either way the step
                               leaves params/opt_state/EMA unchanged.
  train.max_skipped_steps      "skip": stop (an `error:` line, exit 1) once
                               more steps than this were skipped (default 10); None = no cap.
  train.norm_pix_loss          pretrain: targets normalised per tubelet.
  train.reconstruction_loss    pretrain: "l2" (squared) or "l1" (absolute error).
  data.mean, data.std          the input normalisation on the [0, 1] scale
                               (pretraining targets undo it); experiment
                               configs replace `data` with the full data config.
  model                        the model config (`vivit_jax.models.build_model`);
                               a placeholder here, experiment configs replace it.
"""

import ml_collections
from ml_collections import config_dict

from vivit_jax.common.constants import IMAGENET_MEAN, IMAGENET_STD
from vivit_jax.train.partitioning import DEFAULT_RULES


def default_train_config() -> ml_collections.ConfigDict:
  """A ConfigDict with every training key at its default (see module docstring)."""
  c = ml_collections.ConfigDict()
  c.mode = "train"
  c.seed = 0

  c.mesh = ml_collections.ConfigDict()
  c.mesh.shape = (-1, 1, 1)

  c.sharding = ml_collections.ConfigDict()
  c.sharding.rules = DEFAULT_RULES
  c.sharding.constrain_activations = True

  c.distributed = ml_collections.ConfigDict()
  c.distributed.coordinator_address = config_dict.placeholder(str)
  c.distributed.num_processes = config_dict.placeholder(int)
  c.distributed.process_id = config_dict.placeholder(int)
  c.distributed.local_device_ids = config_dict.placeholder(tuple)
  c.distributed.auto = False

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = "adamw"
  c.optimizer.learning_rate = 1e-3
  c.optimizer.warmup_steps = 0
  c.optimizer.end_learning_rate = 0.0
  c.optimizer.b1 = 0.9
  c.optimizer.b2 = 0.999
  c.optimizer.eps = 1e-8
  c.optimizer.momentum = 0.9
  c.optimizer.weight_decay = 0.05
  c.optimizer.clip_grad_norm = config_dict.placeholder(float)
  c.optimizer.layer_decay = config_dict.placeholder(float)
  c.optimizer.ema_decay = config_dict.placeholder(float)

  c.train = ml_collections.ConfigDict()
  c.train.num_steps = 1000
  c.train.batch_size = 64
  c.train.grad_accum_steps = 1
  c.train.label_smoothing = 0.0
  c.train.mixup_alpha = 0.0
  c.train.cutmix_alpha = 0.0
  c.train.mix_prob = 1.0
  c.train.nan_policy = "stop"
  c.train.max_skipped_steps = config_dict.FieldReference(10, field_type=int)
  c.train.norm_pix_loss = True
  c.train.reconstruction_loss = "l2"

  c.data = ml_collections.ConfigDict()
  c.data.mean = IMAGENET_MEAN
  c.data.std = IMAGENET_STD

  c.model = ml_collections.ConfigDict({"name": "vivit"})
  return c
