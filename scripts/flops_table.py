"""Params and GFLOPs per view for the published model sizes, next to the papers.

    python scripts/flops_table.py [--output flops.json]

GFLOPs here are multiply-adds (GMACs), the papers' convention; the hardware
FLOPs used for MFU are twice that (see vivit_jax/models/flops.py).
"""

import argparse
import json

from vivit_jax.models import flops

K400 = dict(name="vivit", num_classes=400)
VIDEOMAE = dict(K400, variant="spatio_temporal", classifier="gap", fc_norm=True,
                pos_embedding="sinusoid")

# (row name, model config, clip (T, H, W, C), paper params in M, paper GFLOPs, source)
ROWS = [
    ("VideoMAE ViT-S 16x224", dict(VIDEOMAE, size="S"), (16, 224, 224, 3), 22, 57, "VideoMAE T.6"),
    ("VideoMAE ViT-B 16x224", dict(VIDEOMAE, size="B"), (16, 224, 224, 3), 87, 180, "VideoMAE T.6"),
    ("VideoMAE ViT-L 16x224", dict(VIDEOMAE, size="L"), (16, 224, 224, 3), 305, 597, "VideoMAE T.6"),
    ("VideoMAE ViT-H 16x224", dict(VIDEOMAE, size="H"), (16, 224, 224, 3), 633, 1192, "VideoMAE T.6"),
    ("VideoMAE ViT-B pretrain (90% tube)", dict(name="videomae", size="B"), (16, 224, 224, 3),
     None, None, ""),
    ("ViViT-B/16x2 Model 1 (joint) 32x224", dict(K400, size="B"), (32, 224, 224, 3),
     None, 455.2, "ViViT T.2"),
    ("ViViT-B/16x2 Model 2 (fact. encoder) 32x224",
     dict(K400, size="B", variant="factorised_encoder"), (32, 224, 224, 3), None, 284.4,
     "ViViT T.2"),
    ("ViViT-B/16x2 Model 3 (fact. self-attn) 32x224",
     dict(K400, size="B", variant="factorised_self_attention", classifier="gap"),
     (32, 224, 224, 3), None, None, ""),
    ("ViViT-B/16x2 Model 4 (fact. dot-product) 32x224",
     dict(K400, size="B", variant="factorised_dot_product", classifier="gap"),
     (32, 224, 224, 3), None, None, ""),
    ("ViViT-L/16x2 Model 2 32x224", dict(K400, size="L", variant="factorised_encoder"),
     (32, 224, 224, 3), None, None, ""),
    ("ViViT-H/14x2 Model 1 32x224", dict(K400, size="H", patch_size=14), (32, 224, 224, 3),
     None, None, ""),
]


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--output", help="write the table as JSON here")
  args = parser.parse_args()
  results = []
  header = f"{'model':50s} {'params':>9s} {'paper':>7s} {'GFLOPs':>8s} {'paper':>7s}  source"
  print(header)
  print("-" * len(header))
  for name, config, clip, paper_params, paper_gflops, source in ROWS:
    s = flops.summary(config, clip)
    fmt = lambda v, spec: format(v, spec) if v is not None else "-"
    print(f"{name:50s} {s['params_m']:8.1f}M {fmt(paper_params, '6d'):>7s} "
          f"{s['gmacs']:8.1f} {fmt(paper_gflops, '7.1f'):>7s}  {source}")
    results.append(dict(model=name, clip=list(clip), params_m=s["params_m"], gmacs=s["gmacs"],
                        paper_params_m=paper_params, paper_gflops=paper_gflops, source=source))
  if args.output:
    with open(args.output, "w") as f:
      json.dump(results, f, indent=2)


if __name__ == "__main__":
  main()
