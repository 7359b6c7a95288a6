"""scripts/gpu_suite.py's plumbing on CPU with the tiny presets."""

import importlib.util
import json
import os

import pytest
from support import REPO

SCRIPTS = os.path.join(REPO, "scripts")


def _suite():
  spec = importlib.util.spec_from_file_location("gpu_suite", os.path.join(SCRIPTS, "gpu_suite.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_suite_rows_are_the_issue_workloads():
  suite = _suite()
  assert [p for p, _ in suite.ROWS] == [
      "videomae_b_pretrain_16x224", "videomae_b_finetune_16x224",
      "vivit_b_spatio_temporal_32x224", "vivit_b_factorised_encoder_32x224",
      "vivit_b_factorised_self_attention_32x224", "vivit_b_factorised_dot_product_32x224"]
  assert dict(suite.ROWS)["vivit_b_spatio_temporal_32x224"] == "vivit_b_spatio_temporal_32x224"


def test_a_side_with_missing_packages_is_skipped_saying_so(tmp_path, monkeypatch, capsys):
  suite = _suite()
  monkeypatch.setattr(suite, "OURS_MODULES", ("jax", "no_such_module_ours"))
  monkeypatch.setattr(suite, "REFERENCE_MODULES", ("no_such_module_ref",))
  monkeypatch.setenv("OUT", str(tmp_path))
  suite.main(["--tiny"])
  report = json.loads((tmp_path / "gpu_suite.json").read_text())
  assert report["rows"] == [] and report["ceiling"] is None
  assert report["notes"] == ["skipping vivit_jax (and the matmul ceiling): missing no_such_module_ours",
                             "skipping the Hugging Face reference: missing no_such_module_ref"]
  printed = capsys.readouterr().out
  assert "missing no_such_module_ours" in printed and "missing no_such_module_ref" in printed
  assert "| workload |" in (tmp_path / "gpu_suite.md").read_text()


@pytest.mark.slow
def test_tiny_suite_measures_both_sides_and_their_ratio(tmp_path):
  pytest.importorskip("torch")
  pytest.importorskip("transformers")
  suite = _suite()
  suite.main(["--tiny", "--preset", "tiny", "--steps", "1", "--warmup", "1",
              "--no-reference-compile", "--output-dir", str(tmp_path)])
  report = json.loads((tmp_path / "gpu_suite.json").read_text())
  assert report["ceiling"]["tflops"] > 0
  ours, ref = report["rows"]
  assert (ours["implementation"], ref["implementation"]) == ("vivit_jax", "transformers eager")
  assert ours["error"] is None and ref["error"] is None
  assert ours["remat_policy"] == "none" and ours["estimated_memory_gib"] > 0
  assert ours["mfu"] == pytest.approx(ours["model_tflops_per_s"] / report["ceiling"]["tflops"])
  assert ours["x_hf_eager"] == pytest.approx(ours["clips_per_s"] / ref["clips_per_s"])
  table = (tmp_path / "gpu_suite.md").read_text()
  assert table.count("| tiny |") == 2
