"""The benchmark harnesses run on CPU for tiny presets and report sane numbers."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from support import REPO

SCRIPTS = os.path.join(REPO, "scripts")


def _load(name):
  spec = importlib.util.spec_from_file_location(name, os.path.join(SCRIPTS, f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.mark.parametrize("preset,video_dtype", [("tiny", "uint8"), ("tiny_pretrain", "float32")])
def test_benchmark_tiny_preset_reports_a_full_row(preset, video_dtype, tmp_path, capsys):
  """The README's columns (clips/s, step time, model TFLOP/s, MFU, peak
  memory, compile time), printed and in the JSON, consistent with each other
  and with the analytic FLOPs of the preset's model (3x forward for training);
  uint8 batches (what the GPU presets feed) as well as float32 ones."""
  from vivit_jax.models import build_model, flops  # pylint: disable=import-outside-toplevel
  module = _load("benchmark")
  output = tmp_path / "bench.json"
  module.main(["--preset", preset, "--steps", "2", "--warmup", "1", "--set",
               f"data.dtype={video_dtype}", "--peak-tflops", "1.0", "--output", str(output)])
  result = json.loads(output.read_text())
  assert result["video_dtype"] == video_dtype
  spec = module.PRESETS[preset]
  assert result["mode"] == spec["mode"] and result["batch_size"] == spec["batch_size"]
  assert result["clip"] == list(spec["clip"]) and result["name"] == preset
  assert result["clips_per_s"] > 0 and result["step_s"] > 0 and result["compile_s"] > 0
  assert result["clips_per_s"] == pytest.approx(result["batch_size"] / result["step_s"])
  per_clip = 3 * 2 * flops.forward_macs(build_model(spec["model"]), tuple(spec["clip"]))
  assert result["model_tflops_per_s"] == pytest.approx(
      per_clip * result["clips_per_s"] / 1e12, rel=1e-6)
  assert result["mfu"] == pytest.approx(result["model_tflops_per_s"] / 1.0)
  assert result["peak_tflops"] == 1.0
  assert result["loss"] is not None and np.isfinite(result["loss"])
  header, row = capsys.readouterr().out.splitlines()[:2]
  assert header.split() == ["workload", "device", "batch", "clips/s", "step", "ms", "TFLOP/s",
                            "MFU", "mem", "GiB", "compile", "s"]
  cells = row.split()
  assert cells[0] == preset and int(cells[2]) == result["batch_size"]
  assert float(cells[3]) == pytest.approx(result["clips_per_s"], abs=0.01)
  assert float(cells[4]) == pytest.approx(1e3 * result["step_s"], abs=0.1)


def test_benchmark_presets_cover_the_issue_workloads():
  presets = _load("benchmark").PRESETS
  for name in ("videomae_b_pretrain_16x224", "videomae_b_finetune_16x224",
               "vivit_b_spatio_temporal_32x224", "vivit_b_factorised_encoder_16x224",
               "vivit_b_factorised_self_attention_32x224", "vivit_b_factorised_dot_product_16x224"):
    assert name in presets
  assert presets["videomae_b_pretrain_16x224"]["batch_size"] == 64
  # The GPU presets feed uint8 pixels, normalised in the step, as the accelerator configs do.
  for name, preset in presets.items():
    assert preset.get("data_dtype", "float32") == ("float32" if name.startswith("tiny")
                                                   else "uint8"), name


def test_benchmark_imports_without_tensorflow():
  code = ("import sys, runpy; sys.argv = ['benchmark.py', '--help']\n"
          "try:\n  runpy.run_path(%r, run_name='__main__')\nexcept SystemExit:\n  pass\n"
          "assert 'tensorflow' not in sys.modules\n") % os.path.join(SCRIPTS, "benchmark.py")
  subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_reference_benchmark_runs_the_same_workload_in_pytorch(tmp_path):
  pytest.importorskip("torch")
  pytest.importorskip("transformers")
  output = tmp_path / "ref.json"
  _load("benchmark_reference").main(["--workload", "tiny", "--steps", "1", "--warmup", "1",
                                     "--output", str(output)])
  result = json.loads(output.read_text())
  assert result["clips_per_s"] > 0 and result["implementation"] == "transformers eager"


def test_cpu_inference_race_tiny_preset_times_every_contender(tmp_path):
  """Every contender, PyTorch and ONNX Runtime included, is timed on the same
  weights; token merging leaves fewer tokens; the machine's load is recorded."""
  output = tmp_path / "race.json"
  module = _load("benchmark_cpu_inference")
  assert module.main(["--preset", "tiny", "--repeats", "2", "--warmup", "0",
                      "--token-merging", "8", "--output", str(output)]) == 0
  result = json.loads(output.read_text())
  preset = result["presets"]["tiny"]
  rows = preset["contenders"]
  assert set(rows) == set(module.CONTENDERS)
  assert rows["torch_eager"]["speed_vs_torch_eager"] == 1.0
  assert rows["ort_float32"]["speed_vs_ort_float32"] == 1.0
  for name, row in rows.items():
    assert len(row["times_ms"]) == 2 and row["median_ms"] > 0, name
    assert row["clips_per_s"] == pytest.approx(1e3 / row["median_ms"]), name
  # Same weights on every side: float32 agrees with PyTorch, int8 nearly.
  for name in ("jax_float32", "jax_float32_chunked", "ort_float32", "onnx_float32"):
    assert rows[name]["max_abs_logit_diff_vs_torch_eager"] < 1e-4, name
  for name in ("jax_int8_dynamic", "ort_int8", "jax_tome", "jax_int8_tome", "jax_bfloat16",
               "jax_bfloat16_tome", "onnx_tome", "onnx_int8_qwix", "onnx_int8",
               "onnx_int8_tome"):
    assert 0 < rows[name]["max_abs_logit_diff_vs_torch_eager"] < 0.1, name
  # 4 x 4 x 4 = 64 tubelets, 8 merged in each of the 2 blocks.
  assert preset["token_counts_merged"] == [56, 48]
  assert preset["tokens_after_last_block"]["jax_tome"] == 48
  assert preset["tokens_after_last_block"]["onnx_int8_tome"] == 48
  # Merged in ONNX Runtime as in XLA.
  assert rows["onnx_tome"]["max_abs_logit_diff_vs_torch_eager"] == pytest.approx(
      rows["jax_tome"]["max_abs_logit_diff_vs_torch_eager"], abs=1e-4)
  assert preset["tokens_after_last_block"]["jax_float32"] == 64
  sizes = preset["param_bytes"]
  assert sizes["int8_weight"] < sizes["float32"]
  assert sizes["ort_int8_onnx_file"] < sizes["ort_float32_onnx_file"]
  machine = preset["machine"]
  assert machine["label"] == ("idle" if machine["idle"] else "loaded")
  assert machine["cpus"] == os.cpu_count() and machine["seconds"] > 0
  assert result["machine_idle"] == machine["idle"]


def test_xla_flag_levers_run_in_their_own_processes_with_the_same_weights(tmp_path):
  """Each lever is a worker process with its XLA flags; same logits where the
  flag does not change the maths, and a time per round for each."""
  output = tmp_path / "levers.json"
  module = _load("benchmark_xla_flags")
  assert module.main(["--preset", "tiny", "--repeats", "2", "--warmup", "0",
                      "--levers", "default,ynn_off,xla_attention", "--token-merging", "8",
                      "--onnxruntime", "--output", str(output)]) == 0
  result = json.loads(output.read_text())
  rows = result["levers"]
  assert list(rows) == ["default", "ynn_off", "xla_attention", "tome", "int8_tome",
                        "ort_float32", "ort_int8"]
  assert rows["default"]["speed_vs_default"] == 1.0
  assert rows["ynn_off"]["xla_flags"] == module.LEVERS["ynn_off"][1]
  assert rows["ort_float32"]["jax_version"] == "onnxruntime"
  for name, row in rows.items():
    assert len(row["times_ms"]) == 2 and min(row["times_ms"]) > 0, name
  # Same weights: float32 everywhere agrees; merging and int8 move the logits.
  for name in ("ynn_off", "xla_attention", "ort_float32"):
    assert rows[name]["max_abs_logit_diff_vs_default"] < 1e-4, name
  for name in ("tome", "int8_tome", "ort_int8"):
    assert 0 < rows[name]["max_abs_logit_diff_vs_default"] < 0.1, name
  assert result["machine"]["label"] in ("idle", "loaded")


def test_machine_load_counts_another_process_as_load():
  """A process spinning beside the timed block is the others' CPU: labelled loaded."""
  machine_load = _load("machine_load")
  spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
  try:
    with machine_load.watch() as load:
      import time  # pylint: disable=import-outside-toplevel
      time.sleep(1.5)
    busy = load.report()
  finally:
    spinner.kill()
    spinner.wait()
  assert busy["others_cores"] > 0.5 and busy["label"] == "loaded" and not busy["idle"]
  assert "LOADED" in machine_load.describe(busy)


@pytest.mark.slow
def test_stream_benchmark_searches_rates_and_reports_each_model(tmp_path):
  """Doubling from --fps (halving below it for a model that drops there), at
  least 8 predictions a trial, token merging as a compressed variant."""
  output = tmp_path / "stream.json"
  module = _load("benchmark_stream")
  assert module.main(["--seconds", "1", "--fps", "25", "--max-fps", "50", "--bisect", "0",
                      "--variants", "tome", "--token-merging", "2",
                      "--json-out", str(output)]) == 0
  result = json.loads(output.read_text())
  assert set(result["models"]) == {"demo", "demo tome"}
  spec = result["input"]
  least = ((spec["num_frames"] - 1) * spec["frame_stride"] + 1
           + module.MIN_PREDICTIONS * result["hop"])
  for name, row in result["models"].items():
    rates = [t["rate"] for t in row["trials"]]
    up = [r for r in rates if r >= 25]
    assert rates[:len(up)] == up == sorted(up) and up[0] == 25 and set(up) <= {25, 50}, name
    assert all(r < 25 for r in rates[len(up):]), name
    kept = [t["rate"] for t in row["trials"] if t["kept_up"]]
    assert row["max_sustained_fps"] == (max(kept) if kept else None), name
    for t in row["trials"]:
      assert t["frames_read"] == max(t["rate"], least), name
      assert t["predictions"] >= module.MIN_PREDICTIONS, name
      assert t["kept_up"] == (t["frames_dropped"] == 0), name
  assert result["machine"]["label"] in ("idle", "loaded")
