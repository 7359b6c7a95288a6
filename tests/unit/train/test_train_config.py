"""Config defaults, mesh construction, sharding rules and the multi-host helpers
on one process (the multi-device and multi-process runs have their own files)."""

import subprocess
import sys

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from vivit_jax.train import distributed, partitioning
from vivit_jax.train.defaults import default_train_config
from vivit_jax.train.mesh import MESH_AXES, create_mesh, resolve_mesh_shape
from vivit_jax.train.steps import check_finite
from vivit_jax.train.specs import StepSpec
from support import REPO


def test_train_package_imports_without_tensorflow():
  code = ("import sys, vivit_jax.train, vivit_jax.train.steps; "
          "assert 'tensorflow' not in sys.modules, 'vivit_jax.train imported TensorFlow'")
  subprocess.run([sys.executable, "-c", code], check=True)


def test_defaults_hold_every_key_and_typos_fail_naming_the_key():
  config = default_train_config()
  for key in ("mode", "seed", "mesh.shape", "sharding.rules", "sharding.constrain_activations",
              "distributed.coordinator_address", "distributed.num_processes",
              "distributed.process_id", "optimizer.name", "optimizer.learning_rate",
              "optimizer.warmup_steps", "optimizer.end_learning_rate", "optimizer.b1",
              "optimizer.b2", "optimizer.eps", "optimizer.weight_decay",
              "optimizer.clip_grad_norm", "optimizer.layer_decay", "optimizer.ema_decay",
              "train.num_steps", "train.batch_size", "train.grad_accum_steps",
              "train.label_smoothing", "train.mixup_alpha", "train.cutmix_alpha",
              "train.mix_prob", "train.nan_policy", "model.name"):
    section, _, name = key.rpartition(".")
    node = config[section] if section else config
    assert name in node, key
  assert config.mode == "train" and config.train.nan_policy == "stop"
  assert config.optimizer.layer_decay is None and config.optimizer.ema_decay is None
  with pytest.raises(AttributeError, match="batchsize"):
    _ = config.train.batchsize
  config.optimizer.layer_decay = 0.75  # typed placeholder accepts its type
  assert config.optimizer.layer_decay == 0.75
  config.lock()
  with pytest.raises(AttributeError, match="learning_rat"):
    config.optimizer.learning_rat = 1.0


def test_mesh_shape_resolution():
  assert resolve_mesh_shape((-1, 1, 1), 8) == (8, 1, 1)
  assert resolve_mesh_shape((2, -1, 2), 8) == (2, 2, 2)
  assert resolve_mesh_shape((2, 4, 1), 8) == (2, 4, 1)
  for bad in ((3, 1, 1), (-1, -1, 1), (3, -1, 1), (8, 1), (0, -1, 1)):
    with pytest.raises(ValueError, match="mesh.shape"):
      resolve_mesh_shape(bad, 8)


def test_create_mesh_has_auto_axes():
  config = default_train_config()
  mesh = create_mesh(config.mesh)
  assert mesh.axis_names == MESH_AXES
  assert mesh.devices.size == jax.device_count()
  assert dict(mesh.shape)["data"] == jax.device_count()
  assert all(t == jax.sharding.AxisType.Auto for t in mesh.axis_types)


def test_rules_normalisation_and_batch_sharding():
  config = default_train_config()
  assert StepSpec.from_config(config).rules == partitioning.DEFAULT_RULES
  config.sharding.rules = [["embed", ["fsdp", "tensor"]], ["mlp", None], ("heads", "tensor")]
  assert StepSpec.from_config(config).rules == (
      ("embed", ("fsdp", "tensor")), ("mlp", None), ("heads", "tensor"))
  config.sharding.rules = ()
  assert StepSpec.from_config(config).rules == partitioning.DEFAULT_RULES
  with pytest.raises(ValueError, match="pairs"):
    partitioning.normalise_rules([("embed",)])
  mesh = create_mesh(config.mesh)
  assert partitioning.batch_sharding(mesh).spec == P(("data", "fsdp"))
  rules = dict(partitioning.DEFAULT_RULES)
  assert rules["activation_batch"] == ("data", "fsdp")
  assert rules["embed"] == "fsdp" and rules["mlp"] == "tensor" and rules["heads"] == "tensor"


def test_distributed_is_a_no_op_when_nothing_asks(monkeypatch):
  for name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
    monkeypatch.delenv(name, raising=False)
  assert distributed.maybe_initialize_distributed(default_train_config()) is False
  assert not jax.distributed.is_initialized()


def test_make_global_batch_single_process():
  mesh = create_mesh(default_train_config().mesh)
  local = {"video": np.arange(2 * 4 * 3, dtype=np.float32).reshape(2, 4, 3),
           "label": np.array([3, 1], np.int32)}
  batch = distributed.make_global_batch(local, mesh)
  assert batch["video"].shape == (2 * jax.process_count(), 4, 3)
  assert batch["label"].dtype == np.int32
  assert batch["video"].sharding.spec == P(("data", "fsdp"))
  np.testing.assert_array_equal(np.asarray(batch["video"]), local["video"])


def test_check_finite_names_the_step():
  check_finite({"is_finite": np.float32(1.0), "loss": np.float32(0.5)}, 3)
  bad = {"is_finite": np.float32(0.0), "loss": np.float32(np.nan)}
  with pytest.raises(FloatingPointError, match="step 17"):
    check_finite(bad, 17)
  assert check_finite(bad, 17, nan_policy="skip") is None
  with pytest.raises(ValueError, match="nan_policy"):
    check_finite(bad, 17, nan_policy="ignore")


def test_demo_configs_load_by_path_from_any_directory_with_their_shared_settings(tmp_path):
  """The demo configs import their sibling `configs/demo_common.py`; that
  must work when `--config` is an absolute path and cwd is elsewhere."""
  import os  # pylint: disable=import-outside-toplevel
  configs = os.path.join(REPO,
                         "configs")
  code = (
      "import sys\n"
      "from absl import flags\n"
      "from ml_collections import config_flags\n"
      "config = config_flags.DEFINE_config_file('config')\n"
      "for name in sys.argv[1:]:\n"
      "  flags.FLAGS.unparse_flags()\n"
      "  flags.FLAGS(['prog', '--config=' + name])\n"
      "  print(config.value.data.num_classes, config.value.data.train_files or "
      "config.value.data.train_list or config.value.data.tfds_name)\n")
  names = ["demo_pretrain", "demo_finetune", "demo_tfrecord", "demo_tfds", "demo_video_list"]
  result = subprocess.run([sys.executable, "-c", code,
                           *[os.path.join(configs, f"{n}.py") for n in names]],
                          cwd=tmp_path, check=True, capture_output=True, text=True)
  lines = result.stdout.strip().splitlines()
  assert len(lines) == len(names)
  repo = os.path.dirname(configs)
  for name, line in zip(names, lines):
    num_classes, where = line.split(" ", 1)
    assert num_classes == "4", (name, line)
    assert where.startswith(repo) or where.startswith("vivit_demo_motion"), (name, line)


def test_every_logical_axis_of_the_models_is_a_named_constant_with_a_default_rule():
  import flax.linen as nn  # pylint: disable=import-outside-toplevel
  from vivit_jax.models import axes, build_model  # pylint: disable=import-outside-toplevel
  constants = {value for name, value in vars(axes).items()
               if name.isupper() and isinstance(value, str)}
  small = dict(hidden_size=32, num_layers=1, num_heads=4, mlp_dim=64, patch_size=8,
               tubelet_size=2)
  models = [(build_model(dict(small, name="vivit", num_classes=5, representation_size=16)),
             (np.zeros((1, 4, 16, 16, 3), np.float32),)),
            (build_model(dict(small, name="videomae", decoder_hidden_size=16,
                              decoder_layers=1, decoder_heads=2, decoder_mlp_dim=32)),
             (np.zeros((1, 4, 16, 16, 3), np.float32), np.ones((1, 8), bool)))]
  used = set()
  for model, inputs in models:
    variables = jax.eval_shape(lambda m=model, x=inputs: m.init(jax.random.PRNGKey(0), *x))
    for spec in jax.tree_util.tree_leaves(nn.get_partition_spec(variables["params"]),
                                          is_leaf=lambda x: isinstance(x, P)):
      used.update(name for name in spec if name is not None)
  assert used and used <= constants, used - constants
  ruled = {name for name, _ in partitioning.DEFAULT_RULES}
  assert constants == ruled, constants ^ ruled
