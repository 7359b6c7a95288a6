"""scripts/gpu_suite.py's plumbing on CPU with the tiny presets, and
gpu_suite.sh on a simulated GPU image (tests/support/gpu_image) with the
wheels gpu_wheels.sh would bring (rebuilt from this venv: support/wheels.py)."""

import ast
import importlib.util
import json
import os
import subprocess
import sys

from packaging.requirements import Requirement
import pytest
import support
from support import REPO, wheels

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


def _run_suite_sh(tmp_path, wheel_dir, *args):
  """`bash scripts/gpu_suite.sh --tiny ARGS` on the simulated GPU image
  (tests/support/gpu_image: no ml_collections, dm_pix, qwix, tensorboardX,
  TensorFlow, TFDS or PyAV outside the wheels' target); `(process, report)`."""
  env = support.gpu_image_env()
  env.update(WHEEL_DIR=str(wheel_dir), PYTHON=sys.executable, OUT=str(tmp_path / "out"))
  done = subprocess.run(["bash", os.path.join(SCRIPTS, "gpu_suite.sh"), "--tiny"] + list(args),
                        env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=900)
  assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
  return done, json.loads((tmp_path / "out" / "gpu_suite.json").read_text())


def test_simulated_gpu_image_without_the_wheels_skips_ours(tmp_path):
  # tiny_pretrain has no reference row: with our side skipped nothing runs.
  done, report = _run_suite_sh(tmp_path, tmp_path / "no_wheels", "--preset", "tiny_pretrain")
  assert "no wheels in" in done.stdout
  assert report["notes"] == ["skipping vivit_jax (and the matmul ceiling): missing ml_collections"]
  assert report["rows"] == [] and report["packages"]["ml_collections"] is None
  assert report["packages"]["jax"]["version"]


@pytest.mark.slow
def test_simulated_gpu_image_suite_measures_ours_from_the_wheels_beside_the_reference(tmp_path):
  """Issue 22 items 2-3: on the simulated image, gpu_suite.sh installs the
  wheels (rebuilt from this venv, support/wheels.py) into its target and
  measures our row beside Hugging Face's; ml_collections, qwix and
  tensorboardX come from that target and nowhere else."""
  pytest.importorskip("torch")
  pytest.importorskip("transformers")
  built = wheels.wheels_from_venv(str(tmp_path / "whl"))
  done, report = _run_suite_sh(tmp_path, tmp_path / "whl", "--preset", "tiny", "--steps", "1",
                               "--warmup", "1", "--no-reference-compile")
  assert "gpu_suite: installed into" in done.stdout
  for path in built:
    assert os.path.basename(path) in done.stdout
  assert "skipping" not in done.stdout
  for name in ("ml_collections", "qwix", "tensorboardX"):
    folder = report["packages"][name]["folder"]
    assert os.path.basename(folder).startswith("gpu_suite_wheels."), (name, folder)
  assert report["ceiling"]["tflops"] > 0
  ours, ref = report["rows"]
  assert (ours["implementation"], ref["implementation"]) == ("vivit_jax", "transformers eager")
  assert ours["error"] is None and ref["error"] is None
  assert ours["remat_policy"] == "none" and ours["estimated_memory_gib"] > 0
  assert ours["mfu"] == pytest.approx(ours["model_tflops_per_s"] / report["ceiling"]["tflops"])
  assert ours["x_hf_eager"] == pytest.approx(ours["clips_per_s"] / ref["clips_per_s"])
  table = (tmp_path / "out" / "gpu_suite.md").read_text()
  assert table.count("| tiny |") == 2 and "ml_collections 1" in table


def _setup_requirements():
  with open(os.path.join(support.REPO, "setup.py")) as f:
    tree = ast.parse(f.read())
  lists = {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body
           if isinstance(node, ast.Assign) and isinstance(node.value, ast.List)
           and isinstance(node.targets[0], ast.Name)}
  return {Requirement(r).name.lower().replace("_", "-"): Requirement(r)
          for r in lists["CORE"] + lists["DATA"]}


def test_gpu_wheels_are_pinned_within_setup_ranges_and_cover_the_image_gaps():
  requirements = _setup_requirements()
  pins = wheels.pinned()
  for name, version in pins.items():
    assert version in requirements[name.lower()].specifier, (name, version)
  # Everything the image lacks, less the data pipeline's TensorFlow/TFDS/PyAV.
  # (Parsed, not run: running it would install the blocker in this process.)
  with open(os.path.join(support.GPU_IMAGE_DIR, "sitecustomize.py")) as f:
    gpu_image = {node.targets[0].id: ast.literal_eval(node.value)
                 for node in ast.parse(f.read()).body if isinstance(node, ast.Assign)
                 and getattr(node.targets[0], "id", None) == "GPU_IMAGE_MISSING"}
  modules = {"ml_collections": "ml-collections", "dm_pix": "dm-pix", "qwix": "qwix",
             "tensorboardX": "tensorboardx"}
  data_only = {"tensorflow", "tensorflow_datasets", "av"}
  assert set(gpu_image["GPU_IMAGE_MISSING"]) - data_only == set(modules)
  assert {n.lower() for n in pins} == set(modules.values())
