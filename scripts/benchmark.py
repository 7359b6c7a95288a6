"""Times the real jitted train / pretrain / eval step on synthetic device batches.

    python scripts/benchmark.py --preset videomae_b_pretrain_16x224 [--steps 20]
    python scripts/benchmark.py --config configs/demo_finetune.py --batch-size 8
    python scripts/benchmark.py --preset tiny --output bench.json   # CPU smoke run

Prints one table row per run: clips/s, step time, model TFLOP/s and MFU
(analytic FLOPs from `vivit_jax.models.flops`, training = 3x forward, matmul
= 2mnk), peak device memory and compile time; `--output` writes JSON.

MFU is against `--peak-tflops` if given, else against the chip's dense bf16
rate from PEAK_BF16_TFLOPS by device kind, or with `--measure-peak` against
a measured 8192^3 bf16 matmul on this device (the table says which).
Imports without TensorFlow: batches are random arrays made on the devices,
uint8 pixels for the GPU presets (`data.dtype="uint8"`, as the accelerator
configs feed them: the step normalises on the device, and that is timed)
and float32 for the tiny ones; `--set data.dtype=float32` switches.
"""

import argparse
import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from vivit_jax.models import build_model, flops
from vivit_jax.train import defaults, experiment, mesh as mesh_lib, partitioning, steps

# Dense bf16 tensor-core peak by `device_kind` substring [TFLOP/s].
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L4": 121.0,
                    "TPU v5 lite": 197.0, "TPU v5": 459.0, "TPU v4": 275.0}

GPU_DATA_DTYPE = "uint8"  # what the accelerator configs (configs/*) ship to the device

VIVIT_B = dict(name="vivit", size="B", num_classes=400, patch_size=16, tubelet_size=2,
               dtype="bfloat16", attention_impl="cudnn")
VIDEOMAE_B_FT = dict(VIVIT_B, variant="spatio_temporal", classifier="gap", fc_norm=True,
                     pos_embedding="sinusoid", drop_path_rate=0.1)


def _vivit_preset(variant, frames, batch):
  classifier = "gap" if variant in ("factorised_self_attention", "factorised_dot_product") \
      else "token"
  return dict(mode="train", model=dict(VIVIT_B, variant=variant, classifier=classifier),
              clip=(frames, 224, 224, 3), batch_size=batch, data_dtype=GPU_DATA_DTYPE)


PRESETS = {
    "tiny": dict(mode="train", model=dict(name="vivit", hidden_size=32, num_layers=2,
                                          num_heads=4, mlp_dim=64, patch_size=8,
                                          tubelet_size=2, num_classes=10),
                 clip=(8, 32, 32, 3), batch_size=4),
    "tiny_pretrain": dict(mode="pretrain", model=dict(
        name="videomae", hidden_size=32, num_layers=2, num_heads=4, mlp_dim=64, patch_size=8,
        tubelet_size=2, decoder_hidden_size=16, decoder_layers=1, decoder_heads=2,
        decoder_mlp_dim=32, mask_ratio=0.75), clip=(8, 32, 32, 3), batch_size=4),
    "videomae_b_pretrain_16x224": dict(mode="pretrain", model=dict(
        name="videomae", size="B", mask_type="tube", mask_ratio=0.9, dtype="bfloat16",
        attention_impl="cudnn"), clip=(16, 224, 224, 3), batch_size=64,
        data_dtype=GPU_DATA_DTYPE),
    "videomae_b_finetune_16x224": dict(mode="finetune", model=VIDEOMAE_B_FT,
                                       clip=(16, 224, 224, 3), batch_size=16,
                                       data_dtype=GPU_DATA_DTYPE),
}
for _variant in ("spatio_temporal", "factorised_encoder", "factorised_self_attention",
                 "factorised_dot_product"):
  PRESETS[f"vivit_b_{_variant}_16x224"] = _vivit_preset(_variant, 16, 16)
  PRESETS[f"vivit_b_{_variant}_32x224"] = _vivit_preset(_variant, 32, 8)


def _parse_value(text):
  """JSON where it parses (numbers, true, null, lists), else the plain string."""
  try:
    return json.loads(text)
  except json.JSONDecodeError:
    return text


def build_config(args):
  """`(config, clip_shape)` from a preset or a config file plus flag overrides."""
  if args.config:
    config = experiment.load_config_file(args.config)
    data = config.get("data")
    clip = (data.num_frames, data.image_size, data.image_size, 3) if data else (8, 32, 32, 3)
  else:
    preset = PRESETS[args.preset]
    config = defaults.default_train_config()
    config.mode = preset["mode"]
    config.model = preset["model"]
    config.train.batch_size = preset["batch_size"]
    config.data.dtype = preset.get("data_dtype", "float32")
    clip = preset["clip"]
  if args.batch_size:
    config.train.batch_size = args.batch_size
  experiment.apply_overrides(config, {key: _parse_value(value) for key, value in
                                      (item.split("=", 1) for item in args.set or ())})
  if jax.default_backend() == "cpu" and config.model.get("attention_impl") == "cudnn":
    print("note: no GPU: attention_impl cudnn -> xla, dtype -> float32", file=sys.stderr)
    config.model.attention_impl = "xla"
    config.model.dtype = "float32"
  return config, tuple(clip)


def measured_peak_tflops(size=8192, repeats=10):
  a = jnp.ones((size, size), jnp.bfloat16)
  matmul = jax.jit(lambda x, y: x @ y)
  matmul(a, a).block_until_ready()
  start = time.perf_counter()
  for _ in range(repeats):
    out = matmul(a, a)
  out.block_until_ready()
  return 2 * size ** 3 * repeats / (time.perf_counter() - start) / 1e12


def peak_tflops(args):
  if args.peak_tflops:
    return args.peak_tflops, "flag"
  if args.measure_peak:
    return measured_peak_tflops(), "measured 8192^3 bf16 matmul"
  kind = jax.devices()[0].device_kind
  for name, value in PEAK_BF16_TFLOPS.items():
    if name in kind:
      return value, f"{name} dense bf16 spec"
  return None, "unknown device"


def peak_memory_gib():
  stats = jax.devices()[0].memory_stats() or {}
  peak = stats.get("peak_bytes_in_use")
  return peak / 2 ** 30 if peak else None


def run(config, clip, num_steps, warmup, profile_dir=None):
  """Compiles and times one step function; returns a result dict.

  With `profile_dir`, the timed steps are traced with `jax.profiler` (open
  the trace in TensorBoard's profile plugin or Perfetto to look for gaps).
  """
  model = build_model(config.model)
  mesh = mesh_lib.create_mesh(config.mesh)
  batch_size = int(config.train.batch_size)
  state, shardings = steps.init_train_state(config, model, mesh, config.seed, clip)
  sharding = partitioning.batch_sharding(mesh)
  key = jax.random.key(1)
  video_dtype = (config.get("data") or {}).get("dtype", "float32")
  if video_dtype == "uint8":  # raw pixels: the step normalises them on the device
    video = jax.random.randint(key, (batch_size,) + clip, 0, 256, jnp.int32).astype(jnp.uint8)
  else:
    video = jax.random.normal(key, (batch_size,) + clip, jnp.float32)
  batch = {"video": jax.device_put(video, sharding),
           "label": jax.device_put(jnp.arange(batch_size, dtype=jnp.int32) % 2, sharding)}
  if config.mode == "eval":
    step_fn = steps.make_eval_step(config, model, mesh, shardings)
  else:
    step_fn = steps.make_train_step(config, model, mesh, shardings)

  start = time.perf_counter()
  compiled = step_fn.lower(state, batch).compile()
  compile_s = time.perf_counter() - start

  def one_step(state):
    if config.mode == "eval":
      metrics = compiled(state, batch)
      return state, metrics
    return compiled(state, batch)

  for _ in range(warmup):
    state, _ = one_step(state)
  jax.block_until_ready(state)
  times = []
  if profile_dir:
    jax.profiler.start_trace(profile_dir)
  for _ in range(num_steps):
    start = time.perf_counter()
    state, metrics = one_step(state)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - start)
  if profile_dir:
    jax.profiler.stop_trace()
  step_s = float(np.median(times))
  forward = 2 * flops.forward_macs(model, clip)
  per_clip = forward if config.mode == "eval" else 3 * forward
  return dict(mode=config.mode, batch_size=batch_size, clip=list(clip), video_dtype=video_dtype,
              step_s=step_s, clips_per_s=batch_size / step_s,
              model_tflops_per_s=per_clip * batch_size / step_s / 1e12,
              compile_s=compile_s, peak_memory_gib=peak_memory_gib(),
              loss=float(metrics["loss"]) if "loss" in metrics else None)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  source = parser.add_mutually_exclusive_group(required=True)
  source.add_argument("--preset", choices=sorted(PRESETS))
  source.add_argument("--config", help="an experiment config file (get_config())")
  parser.add_argument("--steps", type=int, default=10, help="timed steps")
  parser.add_argument("--warmup", type=int, default=2, help="untimed steps after compile")
  parser.add_argument("--batch-size", type=int, help="override the global batch")
  parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                      help="override a config key, e.g. model.remat_policy=dots")
  parser.add_argument("--peak-tflops", type=float, help="chip peak for MFU [TFLOP/s]")
  parser.add_argument("--measure-peak", action="store_true",
                      help="measure the peak with an 8192^3 bf16 matmul")
  parser.add_argument("--profile", metavar="DIR", help="jax.profiler trace of the timed steps")
  parser.add_argument("--output", help="write the result as JSON here")
  args = parser.parse_args(argv)

  config, clip = build_config(args)
  result = run(config, clip, args.steps, args.warmup, args.profile)
  peak, peak_source = peak_tflops(args)
  result.update(name=args.preset or args.config, device=jax.devices()[0].device_kind,
                num_devices=jax.device_count(), jax_version=jax.__version__,
                peak_tflops=peak, peak_source=peak_source,
                mfu=result["model_tflops_per_s"] / peak if peak else None)
  header = (f"{'workload':34s} {'device':>14s} {'batch':>5s} {'clips/s':>9s} {'step ms':>9s} "
            f"{'TFLOP/s':>8s} {'MFU':>6s} {'mem GiB':>8s} {'compile s':>9s}")
  fmt = lambda v, spec: format(v, spec) if v is not None else "n/a"
  print(header)
  print(f"{str(result['name'])[:34]:34s} {result['device'][:14]:>14s} {result['batch_size']:5d} "
        f"{result['clips_per_s']:9.2f} {1e3 * result['step_s']:9.1f} "
        f"{result['model_tflops_per_s']:8.3f} {fmt(result['mfu'], '6.1%'):>6s} "
        f"{fmt(result['peak_memory_gib'], '8.2f'):>8s} {result['compile_s']:9.1f}")
  print(f"MFU against: {peak_source}" + (f" ({peak:.0f} TFLOP/s)" if peak else ""))
  if args.output:
    with open(args.output, "w") as f:
      json.dump(result, f, indent=2)
  return result


if __name__ == "__main__":
  main()
