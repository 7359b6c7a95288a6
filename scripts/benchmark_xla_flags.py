r"""CPU levers, one at a time: XLA flags, async dispatch, attention kernel.

    python scripts/benchmark_xla_flags.py --preset S --repeats 7 --output levers.json
    python scripts/benchmark_xla_flags.py --preset tiny --repeats 2   # plumbing, seconds
    python scripts/benchmark_xla_flags.py --python jax_0.12=.venv312/bin/python  # + jax 0.12

Each lever is our jitted VideoMAE classifier (the race's model,
`benchmark_cpu_inference.PRESETS`, the same random weights, converted once
and saved as a model checkpoint) in its own worker process, because XLA
reads its flags once per process. `--python NAME=PATH` adds levers that
run the default model (and its int8_dynamic, and with `--token-merging` its
int8 + merged version) under another interpreter (another jax: Python 3.12
with jax 0.12, `make venv312`). `--token-merging SCHEDULE` adds the merged
models (tome, int8_tome); `--onnxruntime` adds the race's ONNX Runtime
baselines (the Hugging Face model exported with torch.onnx, fp32 and its
dynamic int8) as workers of their own, so ratios to them come from one run. Every worker
compiles first; then rounds call each worker once in turn (interleaved, a
short pause between calls so one runtime's spinning threads do not eat into
the next one's time). Prints median / p90 ms and the speed relative to the
"default" lever (chunked attention, no flags) and writes JSON. The machine's
load is recorded (`machine_load`); a loaded run says so and meets no target.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Sequence

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(REPO, "scripts")
sys.path.insert(0, REPO)
sys.path.insert(0, SCRIPTS)

import machine_load  # pylint: disable=g-import-not-at-top,wrong-import-position
from vivit_jax.models import token_merging  # pylint: disable=g-import-not-at-top,wrong-import-position

YNN = "--xla_cpu_experimental_ynn_fusion_type"
# name -> (model, XLA_FLAGS, extra environment). jax 0.10.2's XLA:CPU hands
# dots, elementwise ops and reductions to YNNPACK by default. The model is the
# attention kernel ("chunked:N": N queries per block, default 128), then
# "+int8_dynamic" / "+int8_weight" (qwix, `models.quantized`) or "+bfloat16"
# (compute dtype) where a lever changes the model.
LEVERS = {
    "default": ("chunked", "", {}),  # + the interpreter, this one unless --python
    "xla_attention": ("xla", "", {}),
    "query_block_64": ("chunked:64", "", {}),
    "query_block_256": ("chunked:256", "", {}),
    "query_block_512": ("chunked:512", "", {}),
    "ynn_dot_only": ("chunked", f"{YNN}=LIBRARY_FUSION_TYPE_DOT", {}),
    "ynn_individual_dot": ("chunked", f"{YNN}=LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT", {}),
    "ynn_off": ("chunked", f"{YNN}=", {}),
    "ynn_off_onednn": ("chunked", f"{YNN}= --xla_cpu_use_onednn=true "
                       "--xla_cpu_experimental_onednn_fusion_type=LIBRARY_FUSION_TYPE_DOT", {}),
    "fast_math": ("chunked", "--xla_cpu_enable_fast_math=true", {}),
    "sync_dispatch": ("chunked", "", {"JAX_CPU_ENABLE_ASYNC_DISPATCH": "false"}),
    "bfloat16": ("chunked+bfloat16", "", {}),
    "int8_dynamic": ("chunked+int8_dynamic", "", {}),
}
PAUSE_S = 0.05


def save_model(preset: str, seed: int, folder: str, onnxruntime: bool = False) -> str:
  """The race's random VideoMAE classifier as our model checkpoint, and its
  input clip as `video.npy` beside it (with `onnxruntime`, the Hugging Face
  model as `model.onnx` / `model_int8.onnx` and its input `pixel_values.npy`);
  returns the checkpoint folder."""
  import benchmark_cpu_inference as race  # pylint: disable=g-import-not-at-top
  from vivit_jax.convert import conversion as conversion_lib  # pylint: disable=g-import-not-at-top
  hf, conversion, video = race.random_videomae(preset, folder, seed)
  path = conversion_lib.save_converted(conversion, os.path.join(folder, "model"))
  np.save(os.path.join(folder, "video.npy"), video)
  if onnxruntime:
    import torch  # pylint: disable=g-import-not-at-top
    pixel_values = np.ascontiguousarray(video.transpose(0, 1, 4, 2, 3))
    np.save(os.path.join(folder, "pixel_values.npy"), pixel_values)
    race.hf_onnx_files(hf, torch.from_numpy(pixel_values), folder)
  return path


def ort_worker(checkpoint: str, which: str):
  """`run()` of the Hugging Face model in ONNX Runtime (`which`: float32 | int8)."""
  import benchmark_cpu_inference as race  # pylint: disable=g-import-not-at-top
  folder = os.path.dirname(checkpoint)
  name = "model.onnx" if which == "float32" else "model_int8.onnx"
  session = race.ort_session(os.path.join(folder, name))  # not spinning, as in the race
  return race.ort_runner(session, np.load(os.path.join(folder, "pixel_values.npy")))


def worker(checkpoint: str, spec: str, merging: Sequence[int] = ()) -> int:
  """Loads and compiles one model (`spec`, see LEVERS; "ort:float32|int8" the
  ONNX Runtime baselines); then answers each "run" line on stdin with the
  seconds one call took, and "quit" ends it."""
  import jax  # pylint: disable=g-import-not-at-top
  if spec.startswith("ort:"):
    run = ort_worker(checkpoint, spec[4:])
    return serve(run, "onnxruntime")
  from vivit_jax import checkpoints  # pylint: disable=g-import-not-at-top
  from vivit_jax.models import attention, quantized  # pylint: disable=g-import-not-at-top
  kernel, *changes = spec.split("+")
  attention_impl, _, block = kernel.partition(":")
  if block:
    attention.QUERY_BLOCK = int(block)  # read when the model is traced
  video = np.load(os.path.join(os.path.dirname(checkpoint), "video.npy"))
  model, params, _ = checkpoints.load_model(
      checkpoint, video.shape[1:], attention_impl=attention_impl,
      dtype="bfloat16" if "bfloat16" in changes else None)
  if "tome" in changes:
    model = model.clone(token_merging=tuple(merging))
  for method in set(changes) & {"int8_dynamic", "int8_weight"}:
    model, params = quantized.quantize_model_params(model, params, video.shape[1:], method)
  forward = jax.jit(lambda p, x: model.apply({"params": p}, x))
  params, x = jax.device_put(params), jax.device_put(video)
  return serve(lambda: np.asarray(forward(params, x).block_until_ready()), jax.__version__)


def serve(run, version: str) -> int:
  """The worker's loop: one call (compiles), "ready", then a time per "run"."""
  logits = run()
  print(json.dumps({"ready": True, "jax": version,
                    "logits": [float(v) for v in logits[0, :4]]}), flush=True)
  for line in sys.stdin:
    if line.strip() != "run":
      break
    start = time.perf_counter()
    run()
    print(json.dumps({"seconds": time.perf_counter() - start}), flush=True)
  return 0


def start_workers(levers: Dict[str, tuple], checkpoint: str, merging: str
                  ) -> Dict[str, subprocess.Popen]:
  workers = {}
  for name, (impl, flags, env, python) in levers.items():
    environ = dict(os.environ, **env)
    environ["XLA_FLAGS"] = (environ.get("XLA_FLAGS", "") + " " + flags).strip()
    environ["PYTHONPATH"] = os.pathsep.join([REPO, environ.get("PYTHONPATH", "")]).strip(
        os.pathsep)
    workers[name] = subprocess.Popen(
        [python, os.path.abspath(__file__), "--worker", impl, "--checkpoint", checkpoint,
         "--token-merging", merging],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=environ)
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
  parser.add_argument("--python", action="append", default=[], metavar="NAME=PATH",
                      help="levers under interpreter PATH: NAME (the default model), "
                           "NAME_int8_dynamic (and NAME_int8_tome with --token-merging)")
  parser.add_argument("--token-merging", default="",
                      help="ToMe r per block or R0,R1,...: adds the tome and int8_tome levers")
  parser.add_argument("--onnxruntime", action="store_true",
                      help="add ort_float32 and ort_int8 (Hugging Face model in ONNX Runtime)")
  parser.add_argument("--output", help="write the JSON result here")
  parser.add_argument("--worker", metavar="ATTENTION_IMPL", help=argparse.SUPPRESS)
  parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.worker:
    return worker(args.checkpoint, args.worker, token_merging.parse(args.token_merging)
                  if args.token_merging else ())
  names = [n.strip() for n in args.levers.split(",") if n.strip()]
  unknown = sorted(set(names) - set(LEVERS))
  if unknown or "default" not in names:
    parser.error(f"unknown lever(s) {unknown}" if unknown else "--levers must include default")
  levers = {name: LEVERS[name] + (sys.executable,) for name in names}
  for entry in args.python:
    name, _, path = entry.partition("=")
    if not name or not path or not os.path.exists(path):
      parser.error(f"--python {entry!r}: needs NAME=PATH of an existing interpreter")
    levers[name] = ("chunked", "", {}, path)
    levers[f"{name}_int8_dynamic"] = LEVERS["int8_dynamic"] + (path,)
    if args.token_merging:
      levers[f"{name}_int8_tome"] = ("chunked+int8_dynamic+tome", "", {}, path)
  if args.token_merging:
    levers["tome"] = ("chunked+tome", "", {}, sys.executable)
    levers["int8_tome"] = ("chunked+int8_dynamic+tome", "", {}, sys.executable)
  if args.onnxruntime:
    for which in ("float32", "int8"):
      levers[f"ort_{which}"] = (f"ort:{which}", "", {}, sys.executable)
  names = list(levers)
  load = machine_load.LoadWatch()  # the load average before anything starts
  folder = tempfile.mkdtemp(prefix="levers-")
  workers = start_workers(levers, save_model(args.preset, args.seed, folder, args.onnxruntime),
                          args.token_merging)
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
    shutil.rmtree(folder, ignore_errors=True)
  report = load.report()
  base = float(np.median(times["default"]))
  reference = np.asarray(ready["default"]["logits"])
  rows = {}
  for name in names:
    median = float(np.median(times[name]))
    impl, flags, env, python = levers[name]
    rows[name] = {"model": impl, "python": python, "jax_version": ready[name]["jax"],
                  "xla_flags": flags, "env": env,
                  "median_ms": median * 1e3, "p90_ms": float(np.percentile(times[name], 90)) * 1e3,
                  "speed_vs_default": base / median,
                  "max_abs_logit_diff_vs_default": float(np.abs(
                      np.asarray(ready[name]["logits"]) - reference).max()),
                  "times_ms": [t * 1e3 for t in times[name]]}
  print(f"VideoMAE-{args.preset} float32, batch 1, jax {ready['default']['jax']} "
        f"({report['label']} machine)")
  print(f"| {'lever':<22} | {'median ms':>10} | {'p90 ms':>10} | {'x default':>9} | "
        f"{'jax':>8} | flags")
  print("|" + "|".join("-" * n for n in (24, 12, 12, 11, 10, 7)) + "|")
  for name, r in rows.items():
    print(f"| {name:<22} | {r['median_ms']:10.1f} | {r['p90_ms']:10.1f} | "
          f"{r['speed_vs_default']:9.2f} | {r['jax_version']:>8} | {r['model']} "
          f"{r['xla_flags']} "
          f"{' '.join(f'{k}={v}' for k, v in r['env'].items())}")
  print(machine_load.describe(report))
  if args.output:
    with open(args.output, "w") as f:
      json.dump({"preset": args.preset, "jax_version": ready["default"]["jax"],
                 "repeats": args.repeats, "machine": report, "levers": rows}, f, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(main())
