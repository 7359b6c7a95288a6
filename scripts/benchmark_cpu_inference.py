r"""CPU inference race: our VideoMAE classifiers vs PyTorch and ONNX Runtime, batch 1.

    python scripts/benchmark_cpu_inference.py --preset S --repeats 7 --output race.json
    python scripts/benchmark_cpu_inference.py --preset S,B --token-merging 96
    python scripts/benchmark_cpu_inference.py --preset tiny         # plumbing check, seconds

Per preset, one `VideoMAEForVideoClassification` with random weights
(transformers, 400 classes) is saved and converted with our Hugging Face
converter (`vivit_jax.convert`), so every contender holds the same weights:
  torch_eager         transformers in PyTorch eager mode (its default SDPA attention)
  torch_int8          the same after `torch.ao.quantization.quantize_dynamic` (int8 Linear)
  ort_float32         the same model exported with `torch.onnx.export` (dynamo) and run
                      by ONNX Runtime, all graph optimisations
  ort_int8            that ONNX model after `onnxruntime.quantization.quantize_dynamic`
  jax_float32         ours, jitted, `jax.nn.dot_product_attention` (attention_impl "xla")
  jax_float32_chunked ours with attention_impl "chunked" (query blocks, `models.attention`)
  jax_int8_weight     ours, qwix int8 weights (`vivit_jax.compress`), chunked attention
  jax_int8_dynamic    ours, qwix int8 weights and activations, chunked attention
  jax_bfloat16        ours, chunked, bfloat16 compute (float32 weights, model.dtype)
  jax_tome            ours, chunked, token merging (`--token-merging`, ToMe)
  jax_int8_tome       jax_int8_dynamic with token merging
  jax_bfloat16_tome   jax_bfloat16 with token merging
  onnx_float32        ours exported by `vivit_jax.export.onnx` (jax2onnx; `xla` attention),
                      run by ONNX Runtime as above
  onnx_tome           the token-merged model, exported the same way
  onnx_int8_qwix      ours int8_dynamic exported as it computes (MatMulInteger)
  onnx_int8           onnx_float32 after ONNX Runtime's quantize_dynamic
  onnx_int8_tome      onnx_tome after ONNX Runtime's quantize_dynamic
Runs are interleaved (one call of each contender per round, `--repeats`
rounds after `--warmup`), so load on the machine hits all alike. Prints a
table per preset (median / p90 latency in ms, clips/s, speed relative to
torch_eager and to ort_float32, tokens left after the last block, max
|logit - torch_eager logit|) and writes JSON (`--output`). `machine_load`
records the load average before and after and the CPU the other processes
used; a run on a loaded machine says so in its table and JSON and meets no
target. Needs torch, transformers, onnx, onnxscript and onnxruntime
(`pip install -e .[parity]`) and, for the onnx_* contenders, jax2onnx
(`make install`).
"""

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
import time
import warnings
from typing import Any, Callable, Dict, List, Sequence

import jax
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "scripts"))

import machine_load  # pylint: disable=g-import-not-at-top,wrong-import-position
from vivit_jax.common.params import param_bytes  # pylint: disable=g-import-not-at-top
from vivit_jax.convert import huggingface, parity
from vivit_jax.models import build_model, quantized, token_merging

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
CONTENDERS = ("torch_eager", "torch_int8", "ort_float32", "ort_int8", "jax_float32",
              "jax_float32_chunked", "jax_int8_weight", "jax_int8_dynamic", "jax_bfloat16",
              "jax_tome", "jax_int8_tome", "jax_bfloat16_tome", "onnx_float32", "onnx_tome",
              "onnx_int8_qwix", "onnx_int8", "onnx_int8_tome")
BASELINE, ORT_BASELINE = "torch_eager", "ort_float32"
DEFAULT_TOKEN_MERGING = "96"
PAUSE_S = 0.05  # between calls, untimed: the last runtime's spinning threads settle


def torch_runner(model, pixel_values) -> Callable[[], np.ndarray]:
  import torch  # pylint: disable=g-import-not-at-top

  def run():
    with torch.inference_mode():
      return model(pixel_values).logits.numpy()
  return run


def jax_runner(model, params, video) -> Callable[[], np.ndarray]:
  forward = jax.jit(lambda p, x: model.apply({"params": p}, x))
  params, x = jax.device_put(params), jax.device_put(video)
  return lambda: np.asarray(forward(params, x).block_until_ready())


@contextlib.contextmanager
def quiet():
  """Silences torch.onnx's advice (torchvision ops skipped) and torch.ao's
  deprecation while building contenders."""
  loggers = [logging.getLogger(), logging.getLogger("torch.onnx")]
  levels = [logger.level for logger in loggers]
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    for logger in loggers:
      logger.setLevel(logging.ERROR)
    try:
      yield
    finally:
      for logger, level in zip(loggers, levels):
        logger.setLevel(level)


def ort_runner(session, inputs: np.ndarray) -> Callable[[], np.ndarray]:
  name = session.get_inputs()[0].name
  return lambda: session.run(None, {name: inputs})[0]


def hf_onnx_files(hf, pixel_values, folder: str) -> Dict[str, str]:
  """`{"ort_float32": path, "ort_int8": path}`: the Hugging Face model as ONNX
  (torch.onnx dynamo exporter) and its ONNX Runtime dynamic-int8 version."""
  import onnx  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  from vivit_jax.export import onnx as onnx_export  # pylint: disable=g-import-not-at-top
  fp32, int8 = os.path.join(folder, "model.onnx"), os.path.join(folder, "model_int8.onnx")
  with quiet():
    torch.onnx.export(hf, (pixel_values,), fp32, dynamo=True, verbose=False,
                      input_names=["pixel_values"], output_names=["logits"])
  onnx_export.quantize_dynamic(onnx.load(fp32), int8)  # per-channel int8, as our exports
  return {"ort_float32": fp32, "ort_int8": int8}


def ort_session(path: str, threads=None):
  """ONNX Runtime as `--backend onnxruntime` runs it, its threads not spinning
  between calls (they would steal the cores of the contender timed next)."""
  from vivit_jax.serving import onnx_backend  # pylint: disable=g-import-not-at-top
  return onnx_backend.session(path, threads, spin=False)


def our_onnx_file(name: str, float_model, merged_model, params, shape, folder: str) -> str:
  """Our model as ONNX (`vivit_jax.export.onnx`, batch 1) for contender `name`."""
  from vivit_jax.export import onnx as onnx_export  # pylint: disable=g-import-not-at-top
  path = os.path.join(folder, f"{name}.onnx")
  model = merged_model if name.endswith("tome") else float_model
  if name == "onnx_int8_qwix":
    qmodel, qparams = quantized.quantize_model_params(model, params, shape, "int8_dynamic")
    onnx_export.export_model(qmodel, qparams, shape, path, batch=1)
  elif name.startswith("onnx_int8"):
    proto, _ = onnx_export.export_model(model, params, shape, batch=1)
    onnx_export.quantize_dynamic(proto, path)
  else:
    onnx_export.export_model(model, params, shape, path, batch=1)
  return path


def random_videomae(preset: str, folder: str, seed: int = 0):
  """`(hf_model, conversion, video)`: the preset's Hugging Face
  `VideoMAEForVideoClassification` with random weights, saved under
  `folder/hf-<preset>` and converted by our converter, and one normal clip
  `(1, T, H, W, 3)` float32 of its shape. Every benchmark's VideoMAE."""
  hf = parity.random_hf_model("VideoMAEForVideoClassification", seed=seed, **PRESETS[preset])
  hf_dir = os.path.join(folder, f"hf-{preset}")
  hf.save_pretrained(hf_dir)
  conversion = huggingface.convert_huggingface(hf_dir)
  return hf, conversion, parity.random_inputs(conversion, batch=1, seed=seed)[0]


def contenders(preset: str, wanted: Sequence[str], merging: Sequence[int], folder: str,
               seed: int = 0, threads=None) -> Dict[str, Any]:
  """`{"video", "runs": {name: run() -> (1, classes) logits}, "param_bytes",
  "tokens": {name: tokens after the last block}, "attention"}`."""
  import torch  # pylint: disable=g-import-not-at-top
  hf, conversion, video = random_videomae(preset, folder, seed)
  hf_dir = os.path.join(folder, f"hf-{preset}")
  pixel_values = torch.from_numpy(np.ascontiguousarray(video.transpose(0, 1, 4, 2, 3)))
  shape = video.shape[1:]
  patch = (conversion.source["tubelet_size"], *np.broadcast_to(
      conversion.source["patch_size"], (2,)))
  num_tokens = int(np.prod(np.asarray(shape[:3]) // np.asarray(patch)))
  layers = PRESETS[preset]["num_hidden_layers"]
  merged_counts = token_merging.token_counts(
      num_tokens, token_merging.schedule(merging, layers), protect_first=False)
  chunked_config = dict(conversion.config, attention_impl="chunked")
  chunked = build_model(chunked_config)
  merged = build_model(dict(chunked_config, token_merging=tuple(merging)))
  runs: Dict[str, Callable[[], np.ndarray]] = {}
  sizes = {"float32": param_bytes(conversion.params)}
  tokens, onnx_files = {}, {}
  for name in wanted:
    tokens[name] = merged_counts[-1] if name.endswith("tome") else num_tokens
    if name == "torch_eager":
      runs[name] = torch_runner(hf, pixel_values)
    elif name == "torch_int8":
      with quiet():  # torch.ao: deprecated for torchao, still PyTorch's fastest CPU int8
        hf_int8 = torch.ao.quantization.quantize_dynamic(hf, {torch.nn.Linear},
                                                         dtype=torch.qint8)
      runs[name] = torch_runner(hf_int8, pixel_values)
    elif name.startswith("ort_"):
      onnx_files = onnx_files or hf_onnx_files(hf, pixel_values, hf_dir)
      runs[name] = ort_runner(ort_session(onnx_files[name], threads), pixel_values.numpy())
      sizes[f"{name}_onnx_file"] = sum(  # the graph and its external weights (.data)
          os.path.getsize(os.path.join(hf_dir, f)) for f in os.listdir(hf_dir)
          if f.startswith(os.path.basename(onnx_files[name])))
    elif name.startswith("onnx_"):
      xla_merged = build_model(dict(conversion.config, attention_impl="xla",
                                    token_merging=tuple(merging)))
      path = our_onnx_file(name, conversion.model.clone(attention_impl="xla"), xla_merged,
                           conversion.params, shape, folder)
      runs[name] = ort_runner(ort_session(path, threads), video)
      sizes[f"{name}_onnx_file"] = os.path.getsize(path)
    elif name == "jax_float32":
      runs[name] = jax_runner(conversion.model, conversion.params, video)
    elif name == "jax_float32_chunked":
      runs[name] = jax_runner(chunked, conversion.params, video)
    elif name == "jax_tome":
      runs[name] = jax_runner(merged, conversion.params, video)
    elif name in ("jax_bfloat16", "jax_bfloat16_tome"):
      model = merged if name.endswith("tome") else chunked
      runs[name] = jax_runner(model.clone(dtype="bfloat16"), conversion.params, video)
    elif name in ("jax_int8_weight", "jax_int8_dynamic", "jax_int8_tome"):
      method = "int8_weight" if name == "jax_int8_weight" else "int8_dynamic"
      base = merged if name.endswith("tome") else chunked
      qmodel, qparams = quantized.quantize_model_params(base, conversion.params, shape, method)
      runs[name] = jax_runner(qmodel, qparams, video)
      sizes[method] = param_bytes(qparams)
  return {"video": video, "runs": runs, "param_bytes": sizes, "tokens": tokens,
          "token_counts_merged": list(merged_counts),
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
      time.sleep(PAUSE_S)
      start = time.perf_counter()
      run()
      times[name].append(time.perf_counter() - start)
  medians = {name: float(np.median(values)) for name, values in times.items()}
  rows = {}
  for name, values in times.items():
    median = medians[name]
    rows[name] = {"median_ms": median * 1e3, "p90_ms": float(np.percentile(values, 90)) * 1e3,
                  "clips_per_s": 1.0 / median,
                  "speed_vs_torch_eager": (medians[BASELINE] / median
                                           if BASELINE in medians else None),
                  "speed_vs_ort_float32": (medians[ORT_BASELINE] / median
                                           if ORT_BASELINE in medians else None),
                  "max_abs_logit_diff_vs_torch_eager": (float(
                      np.abs(logits[name] - logits[BASELINE]).max())
                                                        if BASELINE in logits else None),
                  "times_ms": [t * 1e3 for t in values]}
  return rows


def table(preset: str, rows: Dict[str, Dict[str, Any]], tokens: Dict[str, int],
          label: str) -> str:
  ratio = lambda v: "n/a" if v is None else f"{v:.2f}"
  lines = [f"VideoMAE-{preset} classifier, batch 1 ({label} machine)",
           f"| {'contender':<20} | {'median ms':>10} | {'p90 ms':>10} | {'clips/s':>8} | "
           f"{'x torch eager':>13} | {'x ORT fp32':>10} | {'tokens':>6} | {'max |dlogit|':>12} |",
           "|" + "|".join("-" * n for n in (22, 12, 12, 10, 15, 12, 8, 14)) + "|"]
  for name, r in rows.items():
    diff = r["max_abs_logit_diff_vs_torch_eager"]
    lines.append(f"| {name:<20} | {r['median_ms']:10.1f} | {r['p90_ms']:10.1f} | "
                 f"{r['clips_per_s']:8.2f} | {ratio(r['speed_vs_torch_eager']):>13} | "
                 f"{ratio(r['speed_vs_ort_float32']):>10} | {tokens[name]:>6} | "
                 f"{'n/a' if diff is None else f'{diff:.2e}':>12} |")
  return "\n".join(lines)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--preset", default="S,B",
                      help=f"comma-separated, of {sorted(PRESETS)} (default S,B)")
  parser.add_argument("--contenders", default=",".join(CONTENDERS),
                      help="comma-separated subset of: " + ", ".join(CONTENDERS))
  parser.add_argument("--token-merging", default=DEFAULT_TOKEN_MERGING,
                      help="ToMe r per block, or R0,R1,... one per block, for the *_tome "
                           f"contenders (default {DEFAULT_TOKEN_MERGING})")
  parser.add_argument("--repeats", type=int, default=5, help="timed rounds")
  parser.add_argument("--warmup", type=int, default=1, help="untimed rounds after compiling")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--threads", type=int,
                      help="CPU threads for every side (torch.set_num_threads, ONNX Runtime "
                           "intra-op threads; for XLA, 1 turns off its multi-threaded Eigen, "
                           "set before JAX starts); default: each library's own (all cores)")
  parser.add_argument("--output", help="write the JSON result here")
  args = parser.parse_args(argv)
  presets = [p.strip() for p in args.preset.split(",") if p.strip()]
  wanted = [c.strip() for c in args.contenders.split(",") if c.strip()]
  unknown = sorted(set(presets) - set(PRESETS))
  if unknown:
    parser.error(f"unknown preset(s) {unknown}; valid: {sorted(PRESETS)}")
  if sorted(set(wanted) - set(CONTENDERS)):
    parser.error(f"unknown contender(s) {sorted(set(wanted) - set(CONTENDERS))}; "
                 f"valid: {', '.join(CONTENDERS)}")
  if args.repeats < 1:
    parser.error("--repeats must be at least 1")
  merging = token_merging.parse(args.token_merging)
  if args.threads is not None:
    if args.threads == 1:
      os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen"
                                 "=false intra_op_parallelism_threads=1").strip()
    import torch  # pylint: disable=g-import-not-at-top
    torch.set_num_threads(args.threads)
  import onnxruntime  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  result = {"backend": jax.default_backend(), "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "threads_flag": args.threads,
            "xla_flags": os.environ.get("XLA_FLAGS", ""), "jax_version": jax.__version__,
            "torch_version": torch.__version__, "onnxruntime_version": onnxruntime.__version__,
            "repeats": args.repeats, "warmup": args.warmup,
            "token_merging": list(merging), "presets": {}}
  with tempfile.TemporaryDirectory() as folder:
    for preset in presets:
      built = contenders(preset, wanted, merging, folder, args.seed, args.threads)
      with machine_load.watch() as load:
        rows = race(built["runs"], args.repeats, args.warmup)
      report = load.report()
      result["presets"][preset] = {
          "hf_config": PRESETS[preset], "video_shape": list(built["video"].shape),
          "torch_attention": built["attention"], "param_bytes": built["param_bytes"],
          "tokens_after_last_block": built["tokens"],
          "token_counts_merged": built["token_counts_merged"], "machine": report,
          "contenders": rows}
      print(table(preset, rows, built["tokens"], report["label"]))
      print(machine_load.describe(report), flush=True)
  result["machine_idle"] = all(p["machine"]["idle"] for p in result["presets"].values())
  if args.output:
    with open(args.output, "w") as f:
      json.dump(result, f, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(main())
