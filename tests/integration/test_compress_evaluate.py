"""The evaluator reads an int8 checkpoint of `python -m vivit_jax.compress`."""

import os

import pytest

from support import train_runs as fx
from vivit_jax.train.evaluation import evaluate
from vivit_jax.compress import __main__ as compress_cli
from vivit_jax.train import loop


@pytest.mark.slow
def test_evaluate_int8_checkpoint_agrees_with_its_float_model(tiny_dataset, tmp_path):
  dataset = tiny_dataset  # conftest.py: written once per test session
  overrides = fx.tiny_overrides(dataset, **{"train.num_steps": 2, "eval.every_steps": 0,
                                            "checkpoint.async_save": False})
  workdir = str(tmp_path / "run")
  loop.run(fx.load_config("demo_finetune.py", overrides), workdir)
  model_dir = os.path.join(workdir, loop.MODEL_DIR)
  int8_dir = str(tmp_path / "int8")
  compress_cli.compress_checkpoint(model_dir, int8_dir, "int8_dynamic", check_clips=0,
                                   progress=False)
  config = fx.load_config("demo_finetune.py", dict(overrides, **{"eval.num_batches": 0}))
  float_report = evaluate.run_evaluation(config, model_dir, str(tmp_path / "f"), progress=False)
  int8_report = evaluate.run_evaluation(config, int8_dir, str(tmp_path / "q"), progress=False)
  assert int8_report["checkpoint_kind"] == "model" and int8_report["step"] == 2
  assert int8_report["num_videos"] == float_report["num_videos"] > 0
  assert int8_report["loss"] == pytest.approx(float_report["loss"], rel=0.02)
  assert int8_report["loss"] != float_report["loss"]  # the int8 model really ran
  assert os.path.exists(tmp_path / "q" / evaluate.REPORT_FILE)
