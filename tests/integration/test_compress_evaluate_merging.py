"""The evaluator runs a checkpoint's token merging (`vivit-compress --token-merging`)."""

import os

import numpy as np
import pytest

from support import train_runs as fx
from vivit_jax import checkpoints
from vivit_jax.train.evaluation import evaluate
from vivit_jax.compress import __main__ as compress_cli
from vivit_jax.train import loop


@pytest.mark.slow
def test_evaluate_honours_the_checkpoints_token_merging(tiny_dataset, tmp_path):
  # Two blocks: the class token sees the merged tokens from the second on.
  overrides = fx.tiny_overrides(tiny_dataset, **{"train.num_steps": 2, "eval.every_steps": 0,
                                                 "checkpoint.async_save": False,
                                                 "model.num_layers": 2})
  workdir = str(tmp_path / "run")
  loop.run(fx.load_config("demo_finetune.py", overrides), workdir)
  # Two steps leave the zero-initialised head near zero, so every encoder
  # output gives nearly the same loss: a random head makes merging show.
  config, params = checkpoints.load_model_checkpoint(os.path.join(workdir, loop.MODEL_DIR))
  head = params["head"]["kernel"]
  params["head"]["kernel"] = np.random.default_rng(0).normal(0, 1, head.shape).astype(np.float32)
  model_dir = checkpoints.save_model_checkpoint(str(tmp_path / "float"), params, config)
  merged_dir = str(tmp_path / "merged")
  compress_cli.compress_checkpoint(model_dir, merged_dir, None, check_clips=0, progress=False,
                                   token_merging=(3,))
  overrides = dict(overrides, **{"eval.num_batches": 0})
  config = fx.load_config("demo_finetune.py", overrides)
  plain = evaluate.run_evaluation(config, model_dir, str(tmp_path / "f"), progress=False)
  merged = evaluate.run_evaluation(config, merged_dir, str(tmp_path / "m"), progress=False)
  # The same as asking for merging in the config, on the float checkpoint.
  asked = evaluate.run_evaluation(
      fx.load_config("demo_finetune.py", dict(overrides, **{"model.token_merging": (3,)})),
      model_dir, str(tmp_path / "a"), progress=False)
  assert merged["num_videos"] == plain["num_videos"] > 0
  assert merged["loss"] == pytest.approx(asked["loss"], rel=1e-5)
  assert merged["loss"] != plain["loss"]  # merging really ran
