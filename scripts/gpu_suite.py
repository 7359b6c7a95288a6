"""One-shot accelerator suite: matmul ceiling, our presets and the PyTorch reference.

    bash scripts/gpu_suite.sh                 # on a machine with one NVIDIA GPU
    python scripts/gpu_suite.py --tiny        # CPU plumbing run (tests/integration/test_gpu_suite.py)

In one run, in this order: the 8192^3 bf16 matmul ceiling; every preset in
ROWS through scripts/benchmark.py, each with the lightest remat policy whose
analytic memory estimate (`vivit_jax.models.memory`) fits 75% of the device;
the Hugging Face PyTorch model of the same workload through
scripts/benchmark_reference.py, eager and `torch.compile` (HF has no
factorised ViViT, so those rows have no reference). Writes gpu_suite.json
and gpu_suite.md (clips/s, TFLOP/s, MFU against the measured ceiling, peak
and estimated memory, compile time, ratios to HF) to $OUT if set, else the
current folder.

Installs nothing itself: `gpu_suite.sh` first installs the wheels the GPU
image lacks (`scripts/gpu_wheels.sh`) into a folder on `PYTHONPATH`. The
report records each package's version and folder (`packages`). A side
whose packages are missing (jax/flax/optax/ml_collections for ours,
torch/transformers for the reference) is skipped with a message; each
measurement runs in its own process (a clean peak-memory counter, and a
failure or timeout costs one row), within `--budget-s` overall.
"""

import argparse
import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OURS_MODULES = ("jax", "flax", "optax", "ml_collections")
REFERENCE_MODULES = ("torch", "transformers")

# (our preset in scripts/benchmark.py, HF workload in scripts/benchmark_reference.py or None)
ROWS = (
    ("videomae_b_pretrain_16x224", "videomae_b_pretrain_16x224"),
    ("videomae_b_finetune_16x224", "videomae_b_finetune_16x224"),
    ("vivit_b_spatio_temporal_32x224", "vivit_b_spatio_temporal_32x224"),
    ("vivit_b_factorised_encoder_32x224", None),
    ("vivit_b_factorised_self_attention_32x224", None),
    ("vivit_b_factorised_dot_product_32x224", None),
)
TINY_ROWS = (("tiny", "tiny"), ("tiny_pretrain", None))

CEILING_CODE = """
import json, sys
sys.path.insert(0, {here!r})
import jax
import benchmark
stats = jax.devices()[0].memory_stats() or {{}}
print(json.dumps(dict(tflops=benchmark.measured_peak_tflops({size}), backend=jax.default_backend(),
                      device=jax.devices()[0].device_kind, bytes_limit=stats.get("bytes_limit"),
                      jax_version=jax.__version__)))
"""


def missing(modules):
  return [m for m in modules if importlib.util.find_spec(m) is None]


def package_sources(modules=OURS_MODULES + ("qwix", "tensorboardX") + REFERENCE_MODULES):
  """`{module: {"version", "folder"}}`, without importing (None where absent)."""
  found = {}
  for name in modules:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.origin:
      found[name] = None
      continue
    try:
      version = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      version = None
    package_dir = os.path.dirname(spec.origin)
    found[name] = dict(version=version, folder=os.path.dirname(package_dir))
  return found


def _child_env():
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
  if "VIVIT_GPU_SUITE_PARENT_PLATFORMS" in env:  # undo the parent's CPU-only setting
    value = env.pop("VIVIT_GPU_SUITE_PARENT_PLATFORMS")
    if value:
      env["JAX_PLATFORMS"] = value
    else:
      env.pop("JAX_PLATFORMS", None)
  return env


class Runner:
  """Runs child processes within one overall time budget [s]."""

  def __init__(self, budget_s, per_run_s):
    self.deadline = time.monotonic() + budget_s
    self.per_run_s = per_run_s

  def __call__(self, argv, label):
    left = self.deadline - time.monotonic()
    if left < 5:
      return None, f"{label}: skipped, the suite's time budget is spent"
    timeout = min(self.per_run_s, left)
    start = time.monotonic()
    try:
      done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                            env=_child_env(), cwd=ROOT)
    except subprocess.TimeoutExpired:
      return None, f"{label}: timed out after {timeout:.0f} s"
    print(f"  {label}: {time.monotonic() - start:.0f} s, exit {done.returncode}", flush=True)
    if done.returncode:
      tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
      return None, f"{label}: failed: {tail[0]}"
    return done.stdout, None


def _json_run(runner, argv, label, workdir):
  path = os.path.join(workdir, label.replace(" ", "_").replace("+", "") + ".json")
  _, error = runner(argv + ["--output", path], label)
  if error:
    return None, error
  with open(path) as f:
    return json.load(f), None


def measure_ceiling(runner, size):
  out, error = runner([sys.executable, "-c", CEILING_CODE.format(here=HERE, size=size)],
                      "matmul ceiling")
  return (json.loads(out.strip().splitlines()[-1]), None) if out else (None, error)


def remat_for(preset, device_bytes):
  """`(policy, estimated bytes)`: the lightest remat whose estimate fits the device."""
  sys.path.insert(0, HERE)
  import benchmark  # pylint: disable=g-import-not-at-top
  from vivit_jax.models import memory  # pylint: disable=g-import-not-at-top
  p = benchmark.PRESETS[preset]
  optimizer = "adamw"
  policy = memory.lightest_remat_that_fits(p["model"], p["clip"], p["batch_size"],
                                           device_bytes, optimizer) if device_bytes else "none"
  estimate = memory.training_memory(p["model"], p["clip"], p["batch_size"], optimizer, policy)
  return policy, estimate["total"]


def run_suite(args):
  rows_spec = [r for r in (TINY_ROWS if args.tiny else ROWS)
               if not args.preset or r[0] in args.preset]
  runner = Runner(args.budget_s, args.per_run_s)
  report = dict(started=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                tiny=args.tiny, packages=package_sources(), notes=[], ceiling=None, rows=[])
  note = lambda text: (print(text, flush=True), report["notes"].append(text))
  ours_missing, ref_missing = missing(OURS_MODULES), missing(REFERENCE_MODULES)
  if ours_missing:
    note(f"skipping vivit_jax (and the matmul ceiling): missing {', '.join(ours_missing)}")
  if ref_missing:
    note(f"skipping the Hugging Face reference: missing {', '.join(ref_missing)}")
  workdir = tempfile.mkdtemp(prefix="gpu_suite_")
  peak = None
  if not ours_missing:
    ceiling, error = measure_ceiling(runner, 512 if args.tiny else 8192)
    if error:
      note(error)
    else:
      report["ceiling"] = ceiling
      peak = ceiling["tflops"]
      note(f"matmul ceiling: {peak:.4g} TFLOP/s on {ceiling['device']} ({ceiling['backend']})")
  steps = ["--steps", str(args.steps), "--warmup", str(args.warmup)]
  peak_flag = ["--peak-tflops", str(peak)] if peak else []
  device_bytes = (report["ceiling"] or {}).get("bytes_limit")
  for preset, workload in rows_spec:
    if not ours_missing:
      policy, estimate = remat_for(preset, device_bytes)
      result, error = _json_run(runner, [
          sys.executable, os.path.join(HERE, "benchmark.py"), "--preset", preset,
          "--set", f"model.remat_policy={policy}"] + steps + peak_flag, f"{preset} vivit_jax",
          workdir)
      row = dict(workload=preset, implementation="vivit_jax", remat_policy=policy,
                 estimated_memory_gib=estimate / 2 ** 30, error=error)
      row.update(result or {})
      report["rows"].append(row)
      if error:
        note(error)
    if workload and not ref_missing:
      for compiled in (False, True)[:2 if args.reference_compile else 1]:
        label = f"{workload} HF {'compile' if compiled else 'eager'}"
        result, error = _json_run(runner, [
            sys.executable, os.path.join(HERE, "benchmark_reference.py"), "--workload",
            workload] + (["--compile"] if compiled else []) + steps + peak_flag, label, workdir)
        row = dict(workload=preset, implementation="transformers + torch.compile" if compiled
                   else "transformers eager", error=error)
        row.update(result or {})
        row["workload"] = preset
        report["rows"].append(row)
        if error:
          note(error)
  _add_ratios(report["rows"])
  return report


def _add_ratios(rows):
  for row in rows:
    if row["implementation"] != "vivit_jax" or not row.get("clips_per_s"):
      continue
    for ref in rows:
      if ref["workload"] == row["workload"] and ref.get("clips_per_s") and (
          ref["implementation"] != "vivit_jax"):
        key = "x_hf_compile" if "compile" in ref["implementation"] else "x_hf_eager"
        row[key] = row["clips_per_s"] / ref["clips_per_s"]


def markdown(report):
  fmt = lambda v, spec: format(v, spec) if isinstance(v, (int, float)) else "-"
  ceiling = report["ceiling"]
  lines = [f"# GPU suite, {report['started']}", ""]
  if ceiling:
    lines += [f"Device: {ceiling['device']} ({ceiling['backend']}, jax {ceiling['jax_version']}); "
              f"measured matmul ceiling {ceiling['tflops']:.4g} TFLOP/s (MFU is against it).", ""]
  versions = [f"{name} {info['version']}" for name, info in report.get("packages", {}).items()
              if info]
  if versions:
    lines += ["Packages: " + ", ".join(versions) + ".", ""]
  lines += ["| workload | implementation | batch | remat | clips/s | TFLOP/s | MFU | peak GiB "
            "| est. GiB | compile s | x HF eager | x HF compile |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
  for r in report["rows"]:
    compile_s = r.get("compile_s", r.get("first_step_s"))
    lines.append(
        f"| {r['workload']} | {r['implementation']} | {r.get('batch_size', '-')} "
        f"| {r.get('remat_policy', '-')} | {fmt(r.get('clips_per_s'), '.2f')} "
        f"| {fmt(r.get('model_tflops_per_s'), '.3f')} | {fmt(r.get('mfu'), '.1%')} "
        f"| {fmt(r.get('peak_memory_gib'), '.2f')} | {fmt(r.get('estimated_memory_gib'), '.2f')} "
        f"| {fmt(compile_s, '.1f')} | {fmt(r.get('x_hf_eager'), '.2f')} "
        f"| {fmt(r.get('x_hf_compile'), '.2f')} |")
  if report["notes"]:
    lines += ["", "Notes:", ""] + [f"* {n}" for n in report["notes"]]
  lines += ["", "HF compile column: the first step's time (compilation included)."]
  return "\n".join(lines) + "\n"


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--tiny", action="store_true", help="tiny presets (CPU plumbing run)")
  parser.add_argument("--preset", action="append", help="only these rows (repeatable)")
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--warmup", type=int, default=2)
  parser.add_argument("--no-reference-compile", dest="reference_compile",
                      action="store_false", help="HF eager only")
  parser.add_argument("--budget-s", type=float, default=450.0, help="whole suite [s]")
  parser.add_argument("--per-run-s", type=float, default=150.0, help="one measurement [s]")
  parser.add_argument("--output-dir", help="default: $OUT, else the current folder")
  args = parser.parse_args(argv)
  out_dir = args.output_dir or os.environ.get("OUT") or os.getcwd()
  report = run_suite(args)
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, "gpu_suite.json"), "w") as f:
    json.dump(report, f, indent=2)
  text = markdown(report)
  with open(os.path.join(out_dir, "gpu_suite.md"), "w") as f:
    f.write(text)
  print(text)
  return report


if __name__ == "__main__":
  # The parent only estimates memory: keep its jax off the GPU (the children
  # measure there) and remember what the children should see.
  os.environ["VIVIT_GPU_SUITE_PARENT_PLATFORMS"] = os.environ.get("JAX_PLATFORMS", "")
  os.environ["JAX_PLATFORMS"] = "cpu"
  sys.path.insert(0, ROOT)
  main()
