"""`vivit-forecast` (`python -m vivit_jax.train.evaluation.forecast`) on a real
pretraining workdir, restored through the evaluator."""

import os
import shutil
import subprocess
import sys

import pytest
from PIL import Image

from support import REPO
from support import train_runs as fx
from support import videos

COMMAND = [sys.executable, "-m", "vivit_jax.train.evaluation.forecast"]


@pytest.mark.slow
def test_forecast_of_a_pretraining_workdir_writes_the_strip_and_the_metrics(tiny_dataset,
                                                                             tmp_path):
  workdir = str(tmp_path / "run")
  overrides = fx.tiny_overrides(tiny_dataset, pretrain=True, **{
      "train.num_steps": 2, "checkpoint.every_steps": 2, "eval.every_steps": 0})
  run = fx.run_main("demo_pretrain.py:forecast", workdir, overrides, env=fx.fast_compile_env())
  assert run.returncode == 0, run.stderr[-3000:]
  video = videos.write_video(str(tmp_path / "clip.mp4"))
  strip = str(tmp_path / "strip.png")
  result = subprocess.run(COMMAND + [f"--checkpoint={workdir}", f"--output={strip}", video],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  rows = {line.split()[0]: line.split()[-2:] for line in result.stdout.splitlines()
          if line.startswith(("forecast ", "copy last frame", "per-patch mean"))}
  assert set(rows) == {"forecast", "copy", "per-patch"}
  assert all(0.0 <= float(ssim) <= 1.0 for _, ssim in rows.values())
  with Image.open(strip) as image:  # truth / visible / forecast rows of 4 frames
    assert image.mode == "RGB" and image.size[0] > image.size[1] > 0

  # The run's config without its checkpoints: nothing to forecast from.
  empty = tmp_path / "empty"
  empty.mkdir()
  shutil.copy(os.path.join(workdir, "config.json"), empty / "config.json")
  result = subprocess.run(COMMAND + [f"--checkpoint={empty}", video], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1] == f"error: {empty} has no training checkpoint"
