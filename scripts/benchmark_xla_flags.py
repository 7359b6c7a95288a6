r"""Float32 CPU levers, one at a time: XLA flags, async dispatch, attention kernel.

    python scripts/benchmark_xla_flags.py --preset S --repeats 7 --output levers.json
    python scripts/benchmark_xla_flags.py --preset tiny --repeats 2   # plumbing, seconds

Each lever is our jitted VideoMAE classifier (the race's model,
`benchmark_cpu_inference.PRESETS`, the same random weights) in its own
worker process, because XLA reads its flags once per process. Every worker
compiles first; then rounds call each worker once in turn (interleaved, a
short pause between calls so one runtime's spinning threads do not eat into
the next one's time). Prints median / p90 ms and the speed relative to the
"default" lever (chunked attention, no flags) and writes JSON. The machine's
load is recorded (`machine_load`); a loaded run says so and meets no target.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Dict, List

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(REPO, "scripts")
sys.path.insert(0, REPO)
sys.path.insert(0, SCRIPTS)

import machine_load  # pylint: disable=g-import-not-at-top,wrong-import-position

YNN = "--xla_cpu_experimental_ynn_fusion_type"
# name -> (attention_impl, XLA_FLAGS, extra environment). jax 0.10.2's XLA:CPU
# hands dots, elementwise ops and reductions to YNNPACK by default.
LEVERS = {
    "default": ("chunked", "", {}),
    "xla_attention": ("xla", "", {}),
    "ynn_dot_only": ("chunked", f"{YNN}=LIBRARY_FUSION_TYPE_DOT", {}),
    "ynn_individual_dot": ("chunked", f"{YNN}=LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT", {}),
    "ynn_off": ("chunked", f"{YNN}=", {}),
    "ynn_off_onednn": ("chunked", f"{YNN}= --xla_cpu_use_onednn=true "
                       "--xla_cpu_experimental_onednn_fusion_type=LIBRARY_FUSION_TYPE_DOT", {}),
    "fast_math": ("chunked", "--xla_cpu_enable_fast_math=true", {}),
    "sync_dispatch": ("chunked", "", {"JAX_CPU_ENABLE_ASYNC_DISPATCH": "false"}),
}
PAUSE_S = 0.05


def worker(preset: str, attention_impl: str, seed: int) -> int:
  """Builds and compiles one model; then answers each "run" line on stdin with
  the seconds one call took and its first logit, and "quit" ends it."""
  import jax  # pylint: disable=g-import-not-at-top
  import benchmark_cpu_inference as race  # pylint: disable=g-import-not-at-top
  from vivit_jax.convert import huggingface, parity  # pylint: disable=g-import-not-at-top
  from vivit_jax.models import build_model  # pylint: disable=g-import-not-at-top
  import tempfile  # pylint: disable=g-import-not-at-top
  hf = parity.random_hf_model("VideoMAEForVideoClassification", seed=seed,
                              **race.PRESETS[preset])
  with tempfile.TemporaryDirectory() as tmp:
    hf.save_pretrained(tmp)
    conversion = huggingface.convert_huggingface(tmp)
  video = parity.random_inputs(conversion, batch=1, seed=seed)[0]
  model = build_model(dict(conversion.config, attention_impl=attention_impl))
  run = race.jax_runner(model, conversion.params, video)
  logits = run()
  print(json.dumps({"ready": True, "jax": jax.__version__,
                    "logits": [float(v) for v in logits[0, :4]]}), flush=True)
  for line in sys.stdin:
    if line.strip() != "run":
      break
    start = time.perf_counter()
    run()
    print(json.dumps({"seconds": time.perf_counter() - start}), flush=True)
  return 0


def start_workers(names: List[str], preset: str, seed: int) -> Dict[str, subprocess.Popen]:
  workers = {}
  for name in names:
    impl, flags, env = LEVERS[name]
    environ = dict(os.environ, **env)
    environ["XLA_FLAGS"] = (environ.get("XLA_FLAGS", "") + " " + flags).strip()
    workers[name] = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--worker", impl, "--preset", preset,
         "--seed", str(seed)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env=environ)
  return workers


def ask(process: subprocess.Popen, line: str = None) -> dict:
  if line is not None:
    process.stdin.write(line + "\n")
    process.stdin.flush()
  answer = process.stdout.readline()
  if not answer:
    raise RuntimeError(f"worker {process.args} ended (exit {process.wait()})")
  return json.loads(answer)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--preset", default="S", help="of benchmark_cpu_inference.PRESETS")
  parser.add_argument("--levers", default=",".join(LEVERS),
                      help="comma-separated, of: " + ", ".join(LEVERS))
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--warmup", type=int, default=1)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--output", help="write the JSON result here")
  parser.add_argument("--worker", metavar="ATTENTION_IMPL", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.worker:
    return worker(args.preset, args.worker, args.seed)
  names = [n.strip() for n in args.levers.split(",") if n.strip()]
  unknown = sorted(set(names) - set(LEVERS))
  if unknown or "default" not in names:
    parser.error(f"unknown lever(s) {unknown}" if unknown else "--levers must include default")
  load = machine_load.LoadWatch()  # the load average before anything starts
  workers = start_workers(names, args.preset, args.seed)
  try:
    ready = {name: ask(w) for name, w in workers.items()}
    for _ in range(args.warmup):
      for w in workers.values():
        ask(w, "run")
    times: Dict[str, List[float]] = {name: [] for name in names}
    load.start(pids=[w.pid for w in workers.values()])  # the workers' CPU is ours
    for _ in range(args.repeats):
      for name, w in workers.items():
        time.sleep(PAUSE_S)
        times[name].append(ask(w, "run")["seconds"])
    load.stop()
  finally:
    for w in workers.values():
      if w.poll() is None:
        w.stdin.write("quit\n")
        w.stdin.close()
        w.wait()
  report = load.report()
  base = float(np.median(times["default"]))
  reference = np.asarray(ready["default"]["logits"])
  rows = {}
  for name in names:
    median = float(np.median(times[name]))
    impl, flags, env = LEVERS[name]
    rows[name] = {"attention_impl": impl, "xla_flags": flags, "env": env,
                  "median_ms": median * 1e3, "p90_ms": float(np.percentile(times[name], 90)) * 1e3,
                  "speed_vs_default": base / median,
                  "max_abs_logit_diff_vs_default": float(np.abs(
                      np.asarray(ready[name]["logits"]) - reference).max()),
                  "times_ms": [t * 1e3 for t in times[name]]}
  print(f"VideoMAE-{args.preset} float32, batch 1, jax {ready['default']['jax']} "
        f"({report['label']} machine)")
  print(f"| {'lever':<20} | {'median ms':>10} | {'p90 ms':>10} | {'x default':>9} | flags")
  print("|" + "|".join("-" * n for n in (22, 12, 12, 11, 7)) + "|")
  for name, r in rows.items():
    print(f"| {name:<20} | {r['median_ms']:10.1f} | {r['p90_ms']:10.1f} | "
          f"{r['speed_vs_default']:9.2f} | {r['attention_impl']} {r['xla_flags']} "
          f"{' '.join(f'{k}={v}' for k, v in r['env'].items())}")
  print(machine_load.describe(report))
  if args.output:
    with open(args.output, "w") as f:
      json.dump({"preset": args.preset, "jax_version": ready["default"]["jax"],
                 "repeats": args.repeats, "machine": report, "levers": rows}, f, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(main())
