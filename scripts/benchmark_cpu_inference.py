r"""CPU inference race: our jitted VideoMAE classifiers vs Hugging Face PyTorch, batch 1.

    python scripts/benchmark_cpu_inference.py                       # VideoMAE-S and -B, 16x224
    python scripts/benchmark_cpu_inference.py --preset S --repeats 5 --output race.json
    python scripts/benchmark_cpu_inference.py --preset tiny         # plumbing check, seconds

Per preset, one `VideoMAEForVideoClassification` with random weights
(transformers, 400 classes) is saved and converted with our Hugging Face
converter (`vivit_jax.convert`), so every contender holds the same weights:
  torch_eager         transformers in PyTorch eager mode (its default SDPA attention)
  torch_int8          the same after `torch.ao.quantization.quantize_dynamic` (int8 Linear)
  jax_float32         ours, jitted, `jax.nn.dot_product_attention` (attention_impl "xla")
  jax_float32_chunked ours with attention_impl "chunked" (query blocks, `models.attention`)
  jax_int8_weight     ours, qwix int8 weights (`vivit_jax.compress`), chunked attention
  jax_int8_dynamic    ours, qwix int8 weights and activations, chunked attention
Runs are interleaved (one call of each contender per round, `--repeats`
rounds after `--warmup`), so load on the machine hits all alike. Prints a
table (median / p90 latency in ms, clips/s, speed relative to torch_eager,
max |logit - torch_eager logit|) and writes JSON (`--output`). Needs torch
and transformers (`pip install -e .[parity]`).
"""

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List

import jax
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from vivit_jax.common.params import param_bytes  # pylint: disable=g-import-not-at-top
from vivit_jax.convert import huggingface, parity
from vivit_jax.models import build_model, quantized

VIDEOMAE_16X224 = dict(image_size=224, patch_size=16, tubelet_size=2, num_frames=16,
                       num_labels=400)
PRESETS = {
    "tiny": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                 intermediate_size=64, image_size=32, patch_size=8, tubelet_size=2,
                 num_frames=8, num_labels=10),
    "S": dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6,
              intermediate_size=1536, **VIDEOMAE_16X224),
    "B": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
              intermediate_size=3072, **VIDEOMAE_16X224),
}
CONTENDERS = ("torch_eager", "torch_int8", "jax_float32", "jax_float32_chunked",
              "jax_int8_weight", "jax_int8_dynamic")
BASELINE = "torch_eager"


def contenders(preset: str, seed: int = 0) -> Dict[str, Any]:
  """`{"video": (1, T, H, W, 3) float32, name: (run() -> logits (1, classes))}`."""
  import torch  # pylint: disable=g-import-not-at-top
  hf = parity.random_hf_model("VideoMAEForVideoClassification", seed=seed, **PRESETS[preset])
  with tempfile.TemporaryDirectory() as tmp:
    hf.save_pretrained(tmp)
    conversion = huggingface.convert_huggingface(tmp)
  video = parity.random_inputs(conversion, batch=1, seed=seed)[0]
  pixel_values = torch.from_numpy(np.ascontiguousarray(video.transpose(0, 1, 4, 2, 3)))
  hf_int8 = torch.ao.quantization.quantize_dynamic(hf, {torch.nn.Linear}, dtype=torch.qint8)

  def torch_runner(model) -> Callable[[], np.ndarray]:
    def run():
      with torch.inference_mode():
        return model(pixel_values).logits.numpy()
    return run

  def jax_runner(model, params) -> Callable[[], np.ndarray]:
    forward = jax.jit(lambda p, x: model.apply({"params": p}, x))
    params, x = jax.device_put(params), jax.device_put(video)
    return lambda: np.asarray(forward(params, x).block_until_ready())

  chunked = build_model(dict(conversion.config, attention_impl="chunked"))
  shape = video.shape[1:]
  runs = {"torch_eager": torch_runner(hf), "torch_int8": torch_runner(hf_int8),
          "jax_float32": jax_runner(conversion.model, conversion.params),
          "jax_float32_chunked": jax_runner(chunked, conversion.params)}
  sizes = {"float32": param_bytes(conversion.params)}
  for method in ("int8_weight", "int8_dynamic"):
    qmodel, qparams = quantized.quantize_model_params(chunked, conversion.params, shape, method)
    runs[f"jax_{method}"] = jax_runner(qmodel, qparams)
    sizes[method] = param_bytes(qparams)
  return {"video": video, "runs": runs, "param_bytes": sizes,
          "attention": getattr(hf.config, "_attn_implementation", None)}


def race(runs: Dict[str, Callable[[], np.ndarray]], repeats: int, warmup: int
         ) -> Dict[str, Dict[str, Any]]:
  """Interleaved timing: each round calls every contender once, in turn."""
  logits = {name: run() for name, run in runs.items()}  # compiles / first call
  for _ in range(warmup):
    for run in runs.values():
      run()
  times: Dict[str, List[float]] = {name: [] for name in runs}
  for _ in range(repeats):
    for name, run in runs.items():
      start = time.perf_counter()
      run()
      times[name].append(time.perf_counter() - start)
  base = float(np.median(times[BASELINE]))
  rows = {}
  for name, values in times.items():
    median = float(np.median(values))
    rows[name] = {"median_ms": median * 1e3, "p90_ms": float(np.percentile(values, 90)) * 1e3,
                  "clips_per_s": 1.0 / median, "speed_vs_torch_eager": base / median,
                  "max_abs_logit_diff_vs_torch_eager": float(
                      np.abs(logits[name] - logits[BASELINE]).max()),
                  "times_ms": [t * 1e3 for t in values]}
  return rows


def table(preset: str, rows: Dict[str, Dict[str, Any]]) -> str:
  lines = [f"VideoMAE-{preset} classifier, batch 1",
           f"| {'contender':<20} | {'median ms':>10} | {'p90 ms':>10} | {'clips/s':>8} | "
           f"{'x torch eager':>13} | {'max |dlogit|':>12} |",
           "|" + "|".join("-" * n for n in (22, 12, 12, 10, 15, 14)) + "|"]
  for name, r in rows.items():
    lines.append(f"| {name:<20} | {r['median_ms']:10.1f} | {r['p90_ms']:10.1f} | "
                 f"{r['clips_per_s']:8.2f} | {r['speed_vs_torch_eager']:13.2f} | "
                 f"{r['max_abs_logit_diff_vs_torch_eager']:12.2e} |")
  return "\n".join(lines)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--preset", default="S,B",
                      help=f"comma-separated, of {sorted(PRESETS)} (default S,B)")
  parser.add_argument("--repeats", type=int, default=5, help="timed rounds")
  parser.add_argument("--warmup", type=int, default=1, help="untimed rounds after compiling")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--threads", type=int,
                      help="CPU threads for both sides (torch.set_num_threads; for XLA, 1 "
                           "turns off its multi-threaded Eigen, set before JAX starts); "
                           "default: each library's own (all cores)")
  parser.add_argument("--output", help="write the JSON result here")
  args = parser.parse_args(argv)
  if args.threads is not None:
    if args.threads == 1:
      os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen"
                                 "=false intra_op_parallelism_threads=1").strip()
    import torch  # pylint: disable=g-import-not-at-top
    torch.set_num_threads(args.threads)
  presets = [p.strip() for p in args.preset.split(",") if p.strip()]
  unknown = sorted(set(presets) - set(PRESETS))
  if unknown or args.repeats < 1:
    parser.error(f"unknown preset(s) {unknown}; valid: {sorted(PRESETS)}" if unknown
                 else "--repeats must be at least 1")
  import torch  # pylint: disable=g-import-not-at-top
  result = {"backend": jax.default_backend(), "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "threads_flag": args.threads,
            "xla_flags": os.environ.get("XLA_FLAGS", ""), "jax_version": jax.__version__,
            "torch_version": torch.__version__, "repeats": args.repeats,
            "warmup": args.warmup, "load_average_1m_before": round(os.getloadavg()[0], 2),
            "presets": {}}
  for preset in presets:
    built = contenders(preset, args.seed)
    rows = race(built["runs"], args.repeats, args.warmup)
    result["presets"][preset] = {"hf_config": PRESETS[preset], "video_shape": list(
        built["video"].shape), "torch_attention": built["attention"],
                                 "param_bytes": built["param_bytes"], "contenders": rows}
    print(table(preset, rows), flush=True)
  result["load_average_1m_after"] = round(os.getloadavg()[0], 2)
  print(f"load average (1 min) before / after: {result['load_average_1m_before']} / "
        f"{result['load_average_1m_after']} on {result['cpus']} cpus")
  if args.output:
    with open(args.output, "w") as f:
      json.dump(result, f, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(main())
