"""Every model option docs/models.md documents is settable on every shipped config.

Iterates configs/ so a new config file is covered without editing this test.
Each override goes through the same paths as the command line: dotted-key
overrides (`load_config_file`) and the `--config.model.<key>=...` flag parser.
"""

import glob
import os
import re

import jax.numpy as jnp
import pytest
from absl import flags
from ml_collections import config_flags

from vivit_jax.models.registry import build_model, model_fields
from vivit_jax.train.experiment import load_config_file
from support import REPO

ROOT = REPO


def _experiment_configs():
  """Every file with a `get_config` (configs/demo_common.py is a helper); a
  file of rows (`get_config(arg)`, e.g. configs/vivit.py) as `path:FIRST_ROW`,
  one with `VARIANTS` as itself and `path:FIRST_VARIANT`."""
  out = []
  for path in sorted(glob.glob(os.path.join(ROOT, "configs", "*.py"))):
    with open(path) as f:
      text = f.read()
    rows = re.search(r"^ROWS = \{\s*\"([^\"]+)\"", text, re.M)
    variants = re.search(r"^VARIANTS = \(\s*\"([^\"]+)\"", text, re.M)
    if "def get_config(arg" in text:
      assert rows or variants, f"{path}: get_config(arg) without ROWS or VARIANTS"
      if rows:
        out.append(f"{path}:{rows.group(1)}")
      else:  # Variants of a config that also loads plainly.
        out += [path, f"{path}:{variants.group(1)}"]
    elif "def get_config" in text:
      out.append(path)
  return out


CONFIGS = _experiment_configs()

# docs/models.md options -> (override value, the built module's attribute value).
DOCUMENTED = {
    "attention_impl": ("cudnn", "cudnn"),
    "remat_policy": ("dots", "dots"),
    "dtype": ("bfloat16", jnp.bfloat16),
    "param_dtype": ("bfloat16", jnp.bfloat16),
    "classifier": ("first", "first"),
    "fc_norm": (True, True),
    "representation_size": (32, 32),
    "dropout_rate": (0.25, 0.25),
    "attention_dropout_rate": (0.25, 0.25),
    "drop_path_rate": (0.25, 0.25),
    "head_dropout_rate": (0.25, 0.25),
    "pos_embedding": ("sinusoid", "sinusoid"),
    "tubelet_size": (1, 1),
    "frame_stride": (3, 3),
    "activation": ("gelu_tanh", "gelu_tanh"),
    "hidden_size": (96, 96),
    "num_layers": (3, 3),
    "num_heads": (6, 6),
    "mlp_dim": (192, 192),
    "patch_size": (8, 8),
    "temporal_layers": (2, 2),
    "mask_ratio": (0.5, 0.5),
    "mask_type": ("random", "random"),
}


def _config_id(path):
  return os.path.basename(path)


def test_configs_directory_is_not_empty():
  assert len(CONFIGS) >= 8, CONFIGS


@pytest.mark.parametrize("path", CONFIGS, ids=_config_id)
def test_every_documented_model_key_overrides_and_builds(path):
  name = load_config_file(path).model.name
  keys = sorted(set(DOCUMENTED) & model_fields(name))
  assert {"attention_impl", "remat_policy", "dtype"} <= set(keys)
  for key in keys:
    value, built = DOCUMENTED[key]
    config = load_config_file(path, {f"model.{key}": value})
    assert config.model[key] == value, key
    model = build_model(config.model)
    assert getattr(model, key) == built, (key, getattr(model, key))


@pytest.mark.parametrize("path", CONFIGS, ids=_config_id)
def test_model_options_parse_from_the_command_line(path):
  argv = ["prog", f"--config={path}", "--config.model.attention_impl=cudnn",
          "--config.model.remat_policy=full", "--config.model.dtype=bfloat16",
          "--config.model.num_layers=2"]
  values = flags.FlagValues()
  config_flags.DEFINE_config_file("config", flag_values=values, sys_argv=argv)
  values(argv)
  config = values.config
  model = build_model(config.model)
  assert (model.attention_impl, model.remat_policy, model.dtype, model.num_layers) == (
      "cudnn", "full", jnp.bfloat16, 2)
  # The rest of the size still comes from the config's `size` (or its explicit keys).
  assert model.hidden_size == build_model(load_config_file(path).model).hidden_size


def test_an_unset_size_field_comes_from_size():
  config = load_config_file(os.path.join(ROOT, "configs", "videomae_b_finetune.py"))
  assert config.model.size == "B" and config.model.hidden_size is None
  model = build_model(config.model)
  assert (model.hidden_size, model.num_layers, model.mlp_dim) == (768, 12, 3072)
  small = build_model(load_config_file(
      os.path.join(ROOT, "configs", "videomae_b_finetune.py"), {"model.size": "S"}).model)
  assert small.hidden_size == 384
