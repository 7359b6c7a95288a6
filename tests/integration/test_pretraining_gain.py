"""scripts/pretraining_gain.py end to end at a tiny size: the table's JSON."""

import importlib.util
import json
import os

import pytest
from support import REPO


def load_script():
  path = os.path.join(REPO, "scripts", "pretraining_gain.py")
  spec = importlib.util.spec_from_file_location("pretraining_gain", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.mark.slow
def test_gain_script_fine_tunes_and_probes_both_inits_and_writes_the_table(tmp_path, capsys):
  out = tmp_path / "gain.json"
  encoder = tmp_path / "encoder.npz"
  load_script().main(["--num_train=32", "--num_eval=16", "--seeds=1", "--fractions=0.5",
                      "--pretrain_steps=4", "--finetune_steps=3", f"--out={out}",
                      f"--save_encoder={encoder}"])
  payload = json.loads(out.read_text())
  assert payload["chance"] == 0.25 and payload["num_eval"] == 16
  assert set(payload["pretraining"]) == {"random"}
  assert {"loss", "pixel_mse", "mean_baseline_pixel_mse"} <= set(payload["pretraining"]["random"])
  for rows in (payload["rows"], payload["probe_rows"]):
    (row,) = rows
    assert row["labelled_clips"] == 16
    for key in ("random_top1", "pretrained_top1", "random_shuffled_top1",
                "pretrained_shuffled_top1"):
      assert len(row[key]) == 1 and 0.0 <= row[key][0] <= 1.0
    assert row["gain_points"] == pytest.approx(
        100 * (row["pretrained_top1"][0] - row["random_top1"][0]))
  assert {r["init"] for r in payload["runs"]} == {"random", "pretrained"}
  printed = capsys.readouterr().out
  assert "full fine-tuning, 3 steps" in printed and "linear probe" in printed
  # The saved encoder is what a second run fine-tunes from, without pretraining
  # (the same fine-tuning steps as above: the session's compilation cache has them).
  load_script().main(["--num_train=32", "--num_eval=16", "--seeds=1", "--fractions=0.5",
                      "--finetune_steps=3", "--probe=0", f"--load_encoder={encoder}",
                      f"--out={out}"])
  again = json.loads(out.read_text())
  assert again["pretraining"] == {} and len(again["rows"]) == 1 and again["probe_rows"] == []
