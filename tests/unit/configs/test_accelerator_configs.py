"""The accelerator configs feed the device (issue 22 item 4).

The paper rows (configs/vivit.py, configs/videomae.py) and the single-run
presets (configs/videomae_b_*.py, configs/vivit_b_k400.py) ship uint8 clips,
normalised in the step (`data.dtype="uint8"`), and the pretraining ones draw
several clips per decoded video (`data.clips_per_video`) without changing
the clip batch, learning rate or step count.
"""

import importlib.util
import os

import pytest

from support import REPO
from vivit_jax.data.config import resolve_data_config
from vivit_jax.train import experiment

PRESETS = ("videomae_b_pretrain", "videomae_b_finetune", "vivit_b_k400")


def _module(name):
  spec = importlib.util.spec_from_file_location(f"accelerator_config_{name}",
                                                os.path.join(REPO, "configs", f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


ROWS = [(f, r) for f in ("vivit", "videomae") for r in _module(f).ROWS]
CONFIGS = [f"{name}.py" for name in PRESETS] + [f"{f}.py:{r}" for f, r in ROWS]


def _load(config):
  return experiment.load_config_file(os.path.join(REPO, "configs", config))


@pytest.mark.parametrize("config", CONFIGS)
def test_accelerator_config_ships_uint8_and_resolves(config):
  loaded = _load(config)
  experiment.validate(loaded)
  data = resolve_data_config(loaded.data)
  assert data.dtype == "uint8"
  pretraining = loaded.mode == "pretrain"
  assert pretraining == (config == "videomae_b_pretrain.py" or "_pt_" in config)
  if pretraining:
    assert data.clips_per_video >= 2
  elif config.startswith("videomae.py:"):
    assert data.clips_per_video == 2  # VideoMAE's repeated augmentation (--num_sample 2)
  else:
    assert data.clips_per_video == 1


def test_pretraining_preset_counts_clips_so_its_recipe_is_unchanged():
  config = _load("videomae_b_pretrain.py")
  module = _module("videomae_b_pretrain")
  assert config.data.clips_per_video == module.CLIPS_PER_VIDEO == 2
  assert config.train.batch_size == 512  # clips: 256 videos x 2
  assert config.optimizer.learning_rate == pytest.approx(1.5e-4 * 512 / 256)
  assert config.train.num_steps == 800 * (module.TRAIN_VIDEOS // 512)


def test_pretraining_rows_keep_the_zoos_clip_batch_from_fewer_videos():
  module = _module("videomae")
  for row, spec in module.ROWS.items():
    if spec["stage"] != "pretrain":
      continue
    config = _load(f"videomae.py:{row}")
    assert config.data.clips_per_video == module.REPEATED_SAMPLING == 2, row
    assert config.train.batch_size == spec["videos"], row
    assert config.optimizer.learning_rate == pytest.approx(1.5e-4 * spec["videos"] / 256)
