"""The paper rows of configs/vivit.py and configs/videomae.py as one table.

    python scripts/reproduce_table.py [--output rows.json]

Prints the Markdown table of docs/reproduce.md: per row the paper's figure
(and the released checkpoint's, where they differ), our parameters and
GFLOPs per view (multiply-adds, the papers' convention; from
`vivit_jax.models.flops`, built abstractly), views, epochs, global batch,
the config, and an empty "reproduced" column for a measured result.
"""

import argparse
import importlib.util
import json
import os

from vivit_jax.models import flops
from vivit_jax.train.experiment import load_config_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILES = ("vivit", "videomae")


def load_module(name):
  path = os.path.join(ROOT, "configs", f"{name}.py")
  spec = importlib.util.spec_from_file_location(f"paper_rows_{name}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def rows():
  """One dict per row of both files, in file order."""
  out = []
  for name in FILES:
    module = load_module(name)
    for row, spec in module.ROWS.items():
      config = load_config_file(os.path.join(ROOT, "configs", f"{name}.py:{row}"))
      d = config.data
      clip = (d.num_frames, d.image_size, d.image_size, 3)
      summary = flops.summary(config.model.to_dict(), clip)
      paper = spec.get("paper", {})
      released = spec.get("released", {})
      views = (f"{d.eval_temporal_views}x{d.eval_spatial_views}"
               if config.mode != "pretrain" else "-")
      clips_per_step = config.train.batch_size
      videos = spec.get("videos", clips_per_step)
      out.append(dict(
          config=f"configs/{name}.py:{row}", row=row, mode=config.mode,
          title=spec.get("title") or f"VideoMAE ViT-{spec['size']} {spec['stage']} "
                                     f"{spec['data'].upper()}",
          metric=paper.get("metric", ""), paper=paper.get("value"),
          paper_views=paper.get("views", ""), released=released.get("value"),
          released_views=released.get("views", ""), paper_params_m=paper.get("params_m"),
          paper_gflops=paper.get("gflops"), params_m=summary["params_m"],
          gflops=summary["gmacs"], clip="x".join(map(str, clip[:3])), views=views,
          epochs=spec["epochs"], global_batch=videos,
          clips_per_step=clips_per_step, notes=spec.get("notes", "")))
  return out


def _fmt(value, spec=".1f"):
  return "-" if value is None else format(value, spec)


def markdown(table):
  lines = ["| config | model | paper | released | views | params (M) ours / paper "
           "| GFLOPs/view ours / paper | clip | epochs | batch (videos) | reproduced |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
  for r in table:
    paper = "-" if r["paper"] is None else f"{r['paper']:.1f} {r['metric']}"
    if r["paper_views"]:
      paper += f" ({r['paper_views']})"
    released = ("-" if r["released"] is None
                else f"{r['released']:.1f} ({r['released_views']})")
    lines.append(
        f"| `{r['config']}` | {r['title']} | {paper} | {released} | {r['views']} | "
        f"{r['params_m']:.1f} / {_fmt(r['paper_params_m'])} | "
        f"{r['gflops']:.1f} / {_fmt(r['paper_gflops'])} | {r['clip']} | {r['epochs']} | "
        f"{r['global_batch']} |  |")
  return "\n".join(lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--output", help="write the rows as JSON here")
  args = parser.parse_args()
  table = rows()
  print(markdown(table))
  if args.output:
    with open(args.output, "w") as f:
      json.dump(table, f, indent=2)


if __name__ == "__main__":
  main()
