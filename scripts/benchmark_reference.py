"""The PyTorch reference for scripts/benchmark.py: Hugging Face transformers models.

    python scripts/benchmark_reference.py --workload videomae_b_pretrain_16x224 [--compile]
    python scripts/benchmark_reference.py --workload tiny --output ref.json   # CPU smoke run

Times a full training step (forward, backward, AdamW update) of the same
workloads as scripts/benchmark.py's presets, with bf16 autocast and SDPA
attention on CUDA (float32 on CPU), optionally under `torch.compile`. Same
table and JSON fields as scripts/benchmark.py so one run gives the ratio.
Needs torch and transformers (optional dependencies; `pip install -e .[parity]`).
"""

import argparse
import json
import time

import numpy as np

from vivit_jax.models import flops

# workload: (HF class name, HF config kwargs, clip (T, H, W, C), batch, our model config)
VIT_B = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
             intermediate_size=3072)
WORKLOADS = {
    "tiny": ("VideoMAEForVideoClassification",
             dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=64, image_size=32, patch_size=8, tubelet_size=2,
                  num_frames=8, num_labels=10),
             (8, 32, 32, 3), 4,
             dict(name="vivit", hidden_size=32, num_layers=2, num_heads=4, mlp_dim=64,
                  patch_size=8, tubelet_size=2, classifier="gap", fc_norm=True,
                  num_classes=10)),
    "videomae_b_pretrain_16x224": (
        "VideoMAEForPreTraining", dict(VIT_B, image_size=224, patch_size=16, tubelet_size=2,
                                       num_frames=16, use_mean_pooling=False),
        (16, 224, 224, 3), 64, dict(name="videomae", size="B", mask_ratio=0.9)),
    "videomae_b_finetune_16x224": (
        "VideoMAEForVideoClassification", dict(VIT_B, image_size=224, patch_size=16,
                                               tubelet_size=2, num_frames=16, num_labels=400),
        (16, 224, 224, 3), 16,
        dict(name="vivit", size="B", classifier="gap", fc_norm=True, num_classes=400)),
    "vivit_b_spatio_temporal_32x224": (
        "VivitForVideoClassification", dict(VIT_B, image_size=224, num_frames=32,
                                            tubelets=[2, 16, 16], num_labels=400),
        (32, 224, 224, 3), 8, dict(name="vivit", size="B", num_classes=400)),
}


def build(workload, device, compile_model):
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  class_name, kwargs, clip, batch, _ = WORKLOADS[workload]
  cls = getattr(transformers, class_name)
  config_cls = transformers.VivitConfig if "Vivit" in class_name else transformers.VideoMAEConfig
  model = cls(config_cls(attn_implementation="sdpa", **kwargs)).to(device).train()
  optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device == "cuda")
  t, h, w, c = clip
  video = torch.randn(batch, t, c, h, w, device=device)
  inputs = {"pixel_values": video}
  if class_name == "VideoMAEForPreTraining":
    tokens = (t // kwargs["tubelet_size"]) * (h // 16) * (w // 16)
    spatial = (h // 16) * (w // 16)
    hidden = int(0.9 * spatial)
    mask = torch.zeros(batch, t // kwargs["tubelet_size"], spatial, dtype=torch.bool)
    for b in range(batch):
      mask[b, :, torch.randperm(spatial)[:hidden]] = True
    inputs["bool_masked_pos"] = mask.reshape(batch, tokens).to(device)
  else:
    inputs["labels"] = torch.randint(0, kwargs["num_labels"], (batch,), device=device)
  forward = torch.compile(model) if compile_model else model

  def step():
    with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
      loss = forward(**inputs).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss

  return step, batch, clip


def main(argv=None):
  import torch  # pylint: disable=g-import-not-at-top
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workload", choices=sorted(WORKLOADS), required=True)
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--warmup", type=int, default=3)
  parser.add_argument("--compile", action="store_true", help="torch.compile the model")
  parser.add_argument("--peak-tflops", type=float, help="chip peak for MFU [TFLOP/s]")
  parser.add_argument("--output", help="write the result as JSON here")
  args = parser.parse_args(argv)

  device = "cuda" if torch.cuda.is_available() else "cpu"
  sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
  step, batch, clip = build(args.workload, device, args.compile)
  start = time.perf_counter()
  step()
  sync()
  first_step_s = time.perf_counter() - start
  for _ in range(args.warmup):
    step()
  sync()
  times = []
  for _ in range(args.steps):
    start = time.perf_counter()
    loss = step()
    sync()
    times.append(time.perf_counter() - start)
  step_s = float(np.median(times))
  our_model = WORKLOADS[args.workload][4]
  train_flops = 3 * 2 * flops.forward_macs(our_model, clip)
  tflops = train_flops * batch / step_s / 1e12
  peak = args.peak_tflops
  result = dict(name=args.workload, implementation="transformers" + (
      " + torch.compile" if args.compile else " eager"), device=device,
                batch_size=batch, clip=list(clip), step_s=step_s, clips_per_s=batch / step_s,
                model_tflops_per_s=tflops, mfu=tflops / peak if peak else None,
                first_step_s=first_step_s, loss=float(loss.detach()),
                peak_memory_gib=(torch.cuda.max_memory_allocated() / 2 ** 30
                                 if device == "cuda" else None),
                torch_version=torch.__version__)
  print(f"{'workload':34s} {'impl':>26s} {'batch':>5s} {'clips/s':>9s} {'step ms':>9s} "
        f"{'TFLOP/s':>8s} {'MFU':>6s}")
  mfu = f"{result['mfu']:.1%}" if result["mfu"] else "n/a"
  print(f"{args.workload[:34]:34s} {result['implementation']:>26s} {batch:5d} "
        f"{result['clips_per_s']:9.2f} {1e3 * step_s:9.1f} {tflops:8.3f} {mfu:>6s}")
  if args.output:
    with open(args.output, "w") as f:
      json.dump(result, f, indent=2)
  return result


if __name__ == "__main__":
  main()
