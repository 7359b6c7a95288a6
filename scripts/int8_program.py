r"""What our int8 models' matmuls compute in on the CPU, and one matmul timed per type.

    python scripts/int8_program.py                 # the dot census: tiny VideoMAE, one Dense
    python scripts/int8_program.py --preset S      # the same for VideoMAE-S 16x224 (~1 min)
    python scripts/int8_program.py --matmul        # one (1568x384)@(384x1536): f32, bf16, s8

`--show` (the default) lowers and compiles, for the CPU, one Dense layer
(1568 tokens x 384 -> 1536) and a VideoMAE-shaped classifier built from our
config (random weights, `chunked` attention) as float32, int8_weight and
int8_dynamic, and prints the census of their dots (`models/quantized_program.py`):
`(lhs, rhs, result)` element types as lowered (StableHLO) and
`(lhs, rhs, result, runner)` as compiled, with one line of each program.

`--matmul` times things: run it on an idle machine (`machine_load` labels a
run on a loaded one). Whole models, float32 against int8_dynamic and one jax
version against another (Python 3.12, jax 0.12), are raced interleaved by
`scripts/benchmark_xla_flags.py --python jax_0.12=.venv312/bin/python`.
"""

import argparse
import json
import os
import sys
import time
from typing import Any, Callable, Dict, List

import jax
import jax.numpy as jnp
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "scripts"))

import machine_load  # pylint: disable=g-import-not-at-top,wrong-import-position

from vivit_jax.models import build_model, quantized  # pylint: disable=g-import-not-at-top
from vivit_jax.models import quantized_program as program  # pylint: disable=g-import-not-at-top

VIDEOMAE = dict(name="vivit", variant="spatio_temporal", classifier="gap", fc_norm=True,
                pos_embedding="sinusoid", qkv_bias=True, activation="gelu",
                layer_norm_eps=1e-12, fc_norm_eps=1e-5, attention_impl="chunked")
# The geometry of scripts/benchmark_cpu_inference.py's presets, as our config.
PRESETS = {
    "tiny": (dict(hidden_size=32, num_layers=2, num_heads=4, mlp_dim=64, patch_size=8,
                  tubelet_size=2, num_classes=10), (8, 32, 32, 3)),
    "S": (dict(hidden_size=384, num_layers=12, num_heads=6, mlp_dim=1536, patch_size=16,
               tubelet_size=2, num_classes=400), (16, 224, 224, 3)),
    "B": (dict(hidden_size=768, num_layers=12, num_heads=12, mlp_dim=3072, patch_size=16,
               tubelet_size=2, num_classes=400), (16, 224, 224, 3)),
}
METHODS = ("float32",) + tuple(sorted(quantized.METHODS))
CPU_FEATURES = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8")


def cpu_features() -> List[str]:
  """The x86 features that decide int8 / bf16 GEMM speed, as /proc/cpuinfo lists them."""
  try:
    with open("/proc/cpuinfo") as f:
      flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
  except OSError:
    return []
  return [feature for feature in CPU_FEATURES if feature in flags]


def models(preset: str, seed: int = 0) -> Dict[str, Any]:
  """`{"video_shape": (T, H, W, C), method: (model, params)}` for every method."""
  config, video_shape = PRESETS[preset]
  model = build_model(dict(VIDEOMAE, **config))
  params = jax.jit(model.init)(jax.random.PRNGKey(seed),
                               jnp.zeros((1, *video_shape), jnp.float32))["params"]
  built = {"video_shape": video_shape, "float32": (model, params)}
  for method in quantized.METHODS:
    built[method] = quantized.quantize_model_params(model, params, video_shape, method)
  return built


def _dense(method: str):
  """`(apply(params, x), params, x)`: one Dense 384 -> 1536 on x (1, 1568, 384)."""
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  layer, x = nn.Dense(1536), jnp.ones((1, 1568, 384), jnp.float32)
  params = layer.init(jax.random.PRNGKey(0), x)["params"]
  if method == "float32":
    return (lambda p, v: layer.apply({"params": p}, v)), params, x
  qlayer, qparams = quantized.quantize_model_params(layer, params, (1568, 384), method)
  return (lambda p, v: qlayer.apply({"params": p}, v)), qparams, x


def _first_line(text: str, *needles: str) -> str:
  """The first line holding every needle, without its metadata."""
  line = next((line.strip() for line in text.splitlines()
               if all(needle in line for needle in needles)), "")
  return line.split(", metadata=")[0][:220]


def show(preset: str) -> None:
  built = models(preset)
  for method in METHODS:
    dense = program.function_dots(*_dense(method))
    model = program.program_dots(*built[method], built["video_shape"])
    for what, census in (("Dense 384->1536 on 1568 tokens", dense),
                         (f"VideoMAE-{preset} batch 1", model)):
      print(f"== {method}, {what}")
      print(f"   lowered  (lhs, rhs, result): {dict(census.lowered)}")
      print(f"   compiled (lhs, rhs, result, runner): {dict(census.compiled)}")
      if what.startswith("Dense"):
        print("   StableHLO: " + _first_line(census.lowered_text, "stablehlo.dot_general"))
        dot = _first_line(census.compiled_text, " dot(")
        print("   CPU HLO:   " + dot)
        result = dot.split(" = ", 1)[1].split("{", 1)[0]  # e.g. s32[1568,1536]
        fusion = _first_line(census.compiled_text, f"= {result}{{", " fusion(")
        print("   runs in:   " + (fusion or "no fusion: XLA's own dot"))


def _time(runs: Dict[str, Callable[[], Any]], repeats: int, warmup: int) -> Dict[str, Any]:
  """Interleaved rounds; per contender median / p90 wall ms and mean process CPU ms."""
  for run in runs.values():
    run()
  for _ in range(warmup):
    for run in runs.values():
      run()
  wall = {name: [] for name in runs}
  cpu = {name: [] for name in runs}
  for _ in range(repeats):
    for name, run in runs.items():
      start, start_cpu = time.perf_counter(), time.process_time()
      run()
      wall[name].append(time.perf_counter() - start)
      cpu[name].append(time.process_time() - start_cpu)
  return {name: {"median_ms": float(np.median(wall[name])) * 1e3,
                 "p90_ms": float(np.percentile(wall[name], 90)) * 1e3,
                 "cpu_ms": float(np.mean(cpu[name])) * 1e3} for name in runs}


def matmul_runs(m: int, k: int, n: int) -> Dict[str, Callable[[], Any]]:
  """One (m, k) @ (k, n) matmul per operand type, jitted, on the CPU."""
  rng = np.random.default_rng(0)
  a8 = jnp.asarray(rng.integers(-127, 128, (m, k), dtype=np.int8))
  b8 = jnp.asarray(rng.integers(-127, 128, (k, n), dtype=np.int8))
  cases = {"f32 x f32 -> f32": (jnp.float32, jnp.float32),
           "bf16 x bf16 -> f32": (jnp.bfloat16, jnp.float32),
           "s8 x s8 -> s32": (jnp.int8, jnp.int32)}
  runs = {}
  for name, (dtype, accumulator) in cases.items():
    dot = jax.jit(lambda a, b, acc=accumulator: jax.lax.dot(a, b, preferred_element_type=acc))
    a, b = a8.astype(dtype), b8.astype(dtype)
    runs[name] = lambda dot=dot, a=a, b=b: dot(a, b).block_until_ready()
  return runs


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  mode = parser.add_mutually_exclusive_group()
  mode.add_argument("--show", action="store_true", help="the dot census (default)")
  mode.add_argument("--matmul", action="store_true", help="time one matmul per operand type")
  parser.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
  parser.add_argument("--shape", default="1568,384,1536", help="--matmul's M,K,N")
  parser.add_argument("--repeats", type=int, default=7)
  parser.add_argument("--warmup", type=int, default=1)
  parser.add_argument("--output", help="write the timing JSON here")
  args = parser.parse_args(argv)
  header = {"jax_version": jax.__version__, "python": sys.version.split()[0],
            "xla_flags": os.environ.get("XLA_FLAGS", ""), "cpus": os.cpu_count(),
            "cpu_features": cpu_features()}
  print(" ".join(f"{key}={value}" for key, value in header.items()))
  if not args.matmul:
    show(args.preset)
    return 0
  if args.repeats < 1:
    parser.error("--repeats must be at least 1")
  sizes = args.shape.split(",")
  if len(sizes) != 3 or not all(size.strip().isdigit() and int(size) > 0 for size in sizes):
    parser.error(f"--shape {args.shape!r}: give M,K,N as three positive integers, "
                 "e.g. 1568,384,1536")
  m, k, n = (int(size) for size in sizes)
  runs, what = matmul_runs(m, k, n), f"({m}x{k})@({k}x{n})"
  with machine_load.watch() as load:
    rows = _time(runs, args.repeats, args.warmup)
  report = load.report()
  base = rows[next(iter(rows))]["median_ms"]
  print(f"{what}; {args.repeats} interleaved rounds; {report['label']} machine")
  print(f"| {'contender':<20} | {'median ms':>9} | {'p90 ms':>8} | {'CPU ms':>8} | "
        f"{'x first':>7} |")
  for name, row in rows.items():
    print(f"| {name:<20} | {row['median_ms']:9.2f} | {row['p90_ms']:8.2f} | "
          f"{row['cpu_ms']:8.2f} | {base / row['median_ms']:7.2f} |")
  print(machine_load.describe(report))
  if args.output:
    with open(args.output, "w") as f:
      json.dump(dict(header, what=what, repeats=args.repeats, warmup=args.warmup,
                     machine=report, contenders=rows), f, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(main())
