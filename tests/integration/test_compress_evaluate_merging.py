"""The evaluator runs a checkpoint's token merging (`vivit-compress --token-merging`)."""

import os

import pytest

from support import train_runs as fx
from vivit_jax import evaluate
from vivit_jax.compress import __main__ as compress_cli
from vivit_jax.train import loop


@pytest.mark.slow
def test_evaluate_honours_the_checkpoints_token_merging(tiny_dataset, tmp_path):
  overrides = fx.tiny_overrides(tiny_dataset, **{"train.num_steps": 2, "eval.every_steps": 0,
                                                 "checkpoint.async_save": False})
  workdir = str(tmp_path / "run")
  loop.run(fx.load_config("demo_finetune.py", overrides), workdir)
  model_dir = os.path.join(workdir, loop.MODEL_DIR)
  merged_dir = str(tmp_path / "merged")
  compress_cli.compress_checkpoint(model_dir, merged_dir, None, check_clips=0, progress=False,
                                   token_merging=(8,))
  overrides = dict(overrides, **{"eval.num_batches": 0})
  config = fx.load_config("demo_finetune.py", overrides)
  plain = evaluate.run_evaluation(config, model_dir, str(tmp_path / "f"), progress=False)
  merged = evaluate.run_evaluation(config, merged_dir, str(tmp_path / "m"), progress=False)
  # The same as asking for merging in the config, on the float checkpoint.
  asked = evaluate.run_evaluation(
      fx.load_config("demo_finetune.py", dict(overrides, **{"model.token_merging": (8,)})),
      model_dir, str(tmp_path / "a"), progress=False)
  assert merged["num_videos"] == plain["num_videos"] > 0
  assert merged["loss"] == pytest.approx(asked["loss"], rel=1e-5)
  assert merged["loss"] != plain["loss"]  # merging really ran
