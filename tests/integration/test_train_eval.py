"""Evaluation through the main job: periodic eval feeding keep_best, the
confusion PNGs, metrics.json, and `mode=eval` with and without shuffled frames."""

import json
import math
import os
import re

import numpy as np
import pytest
from PIL import Image

from support import train_runs as fx
from vivit_jax.train import loop


@pytest.fixture(scope="module")
def dataset(tiny_dataset):
  return tiny_dataset  # conftest.py: written once per test session


@pytest.mark.slow  # three evals and two eval-only runs: ~1 min on a loaded 2-core machine
def test_periodic_eval_keeps_the_best_and_eval_mode_reproduces_it(dataset, tmp_path, capsys):
  workdir = str(tmp_path / "run")
  overrides = fx.tiny_overrides(dataset, **{
      "train.num_steps": 6, "eval.every_steps": 2, "eval.num_batches": 0,
      "checkpoint.every_steps": 2, "checkpoint.keep": 1, "checkpoint.keep_best": 1,
      "checkpoint.best_metric": "eval/loss", "checkpoint.best_mode": "min",
      "checkpoint.async_save": False, "optimizer.learning_rate": 3e-3})
  result = loop.run(fx.load_config("demo_finetune.py", overrides), workdir)
  out = capsys.readouterr().out
  losses = {int(step): float(loss) for step, loss in
            re.findall(r"eval at step (\d+): .*?\bloss (\d+\.\d+)", out)}
  assert sorted(losses) == [2, 4, 6], out[-2000:]
  assert len(set(losses.values())) == 3  # the model learned between evals
  best = min(losses, key=losses.get)
  assert fx.checkpoint_steps(workdir) == sorted({best, 6})

  with open(os.path.join(workdir, "metrics.json")) as f:
    metrics = json.load(f)
  assert metrics["step"] == 6 and metrics["skipped_steps"] == 0
  assert metrics["eval/num_videos"] == 16
  assert math.isclose(metrics["eval/loss"], losses[6], rel_tol=1e-4) and metrics == json.loads(
      json.dumps(result))
  for step in (2, 4, 6):
    picture = np.asarray(Image.open(os.path.join(workdir, "images",
                                                 f"confusion_{step:07d}.png")))
    assert picture.ndim == 3 and picture.shape[2] == 3 and picture.std() > 0

  evals = {}
  for shuffle in (False, True):
    config = fx.load_config("demo_finetune.py", dict(overrides, **{
        "mode": "eval", "eval.shuffle_frames": shuffle}))
    evals[shuffle] = loop.run(config, workdir)
    name = f"eval_step6{'_shuffled' if shuffle else ''}.json"
    with open(os.path.join(workdir, name)) as f:
      assert json.load(f) == json.loads(json.dumps(evals[shuffle]))
  assert evals[False]["step"] == 6
  np.testing.assert_allclose(evals[False]["eval/loss"], metrics["eval/loss"], rtol=1e-5)
  assert evals[False]["eval/top1"] == metrics["eval/top1"]
  assert abs(evals[True]["eval/loss"] - evals[False]["eval/loss"]) > 1e-5
