"""scripts/compression_accuracy.py at a tiny size: rows scored from real predictions."""

import importlib.util
import json
import os

import jax
import numpy as np
import pytest

from support import REPO
from support import train_runs as fx
from vivit_jax import checkpoints
from vivit_jax.train import inputs, specs
from vivit_jax.train.evaluation import evaluate

TINY = {"data.num_frames": fx.FRAMES, "data.stride": 1, "data.image_size": fx.SIZE,
        "data.resize_short_side": fx.SIZE, "data.num_parallel_calls": 1,
        "train.batch_size": 8, "eval.batch_size": 8, "optimizer.warmup_steps": 2,
        "model.hidden_size": 32, "model.num_layers": 2, "model.num_heads": 4,
        "model.mlp_dim": 64}


def load_script():
  path = os.path.join(REPO, "scripts", "compression_accuracy.py")
  spec = importlib.util.spec_from_file_location("compression_accuracy", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def direct_predictions(config, model_dir: str) -> np.ndarray:
  """The float model's argmax per eval video, by `model.apply` on the eval input
  (one view per video), in video-index order: no evaluator involved."""
  model, params, _ = checkpoints.load_model(model_dir)
  apply = jax.jit(lambda p, x: model.apply({"params": p}, x))
  by_index = {}
  for batch in inputs.create_iterator(specs.resolve(config).data, train=False):
    logits = np.asarray(apply(params, batch["video"]))
    valid = np.asarray(batch.get("valid", np.ones(len(logits))), bool)
    for index, row in zip(np.asarray(batch["video_index"])[valid], logits[valid]):
      by_index[int(index)] = int(np.argmax(row))
  return np.array([by_index[i] for i in sorted(by_index)])


@pytest.mark.slow
def test_every_variant_is_scored_against_float32_from_its_predictions(tiny_dataset, tmp_path,
                                                                      capsys):
  out = tmp_path / "accuracy.json"
  data_dir = os.path.dirname(tiny_dataset["eval_files"])
  sets = [f"--set={k}={v}" for k, v in TINY.items()]
  assert load_script().main(["--models=tokens", "--tokens_steps=12", "--merge_fractions=0,0.5",
                             "--merge_per_block=0.4",
                             f"--data_dir={data_dir}", f"--workdir={tmp_path / 'work'}",
                             f"--output={out}", *sets]) == 0
  payload = json.loads(out.read_text())
  assert payload["target"] == {"max_top1_drop_points": 1.0, "min_agreement_pct": 97.0}
  assert "Bolya" in payload["literature"]
  result = payload["models"]["tokens"]
  rows = {row["name"]: row for row in result["variants"]}
  # 8 patch tokens + CLS, 2 blocks: fraction 0.5 -> r = 2 per block; 40% per
  # block -> round(0.4 * 8) = 3, then round(0.4 * 5) = 2.
  assert list(rows) == ["float32", "int8_weight", "int8_dynamic", "tome r=0", "tome r=2",
                        "tome r=2 + int8_dynamic", "tome 40%/block",
                        "tome 40%/block + int8_dynamic"]
  labels = np.array(result["labels"])
  assert result["num_videos"] == len(labels) == 16
  reference = np.array(rows["float32"]["predictions"])
  for row in rows.values():
    predictions = np.array(row["predictions"])
    assert predictions.shape == labels.shape
    assert row["top1"] == pytest.approx(100 * np.mean(predictions == labels))
    assert row["agreement_pct"] == pytest.approx(100 * np.mean(predictions == reference))
    assert row["delta_top1_points"] == pytest.approx(row["top1"] - rows["float32"]["top1"])
    assert row["meets_target"] == (row["delta_top1_points"] >= -1.0
                                   and row["agreement_pct"] >= 97.0)
    assert row["tokens_in"] == 9
  assert rows["float32"]["agreement_pct"] == 100.0 and rows["float32"]["meets_target"]
  assert rows["tome r=0"]["predictions"] == rows["float32"]["predictions"]
  assert rows["float32"]["mean_max_prob_diff"] == rows["tome r=0"]["mean_max_prob_diff"] == 0.0
  assert rows["tome r=2 + int8_dynamic"]["mean_max_prob_diff"] > 0.0  # it computed otherwise
  assert rows["float32"]["tokens_per_block"] == rows["tome r=0"]["tokens_per_block"] == [9, 9]
  assert rows["tome r=2"]["tokens_per_block"] == [7, 5]
  assert rows["tome r=2 + int8_dynamic"]["tokens_last_block"] == 5
  for name in ("tome 40%/block", "tome 40%/block + int8_dynamic"):
    assert rows[name]["token_merging"] == [3, 2] and rows[name]["merge_per_block"] == 0.4
    assert rows[name]["tokens_per_block"] == [6, 4]
  assert (rows["tome 40%/block + int8_dynamic"]["param_bytes"]
          == rows["int8_dynamic"]["param_bytes"])
  assert payload["merge_per_block"] == [0.4]
  assert rows["int8_dynamic"]["param_bytes"] < rows["float32"]["param_bytes"]
  assert rows["tome r=2"]["param_bytes"] == rows["float32"]["param_bytes"]

  config = fx.load_config("demo_tokens.py:256", dict(
      TINY, **{"data.train_files": tiny_dataset["train_files"],
               "data.eval_files": tiny_dataset["eval_files"]}))
  # The float32 predictions are the model's own argmax on the eval clips.
  np.testing.assert_array_equal(direct_predictions(config, result["checkpoint"]), reference)
  # A written variant's top-1 is what vivit-evaluate reports on it.
  merged = rows["tome r=2 + int8_dynamic"]
  report = evaluate.run_evaluation(config, merged["checkpoint"], str(tmp_path / "eval"),
                                   progress=False)
  assert 100 * report["top1"] == pytest.approx(merged["top1"])
  assert "| tome r=2 + int8_dynamic | 5 |" in capsys.readouterr().out
