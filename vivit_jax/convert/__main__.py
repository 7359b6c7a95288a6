"""Converts published weights into a model checkpoint.

    python -m vivit_jax.convert --from huggingface --input HF_DIR --output CKPT_DIR \
        [--force] [--verify]

HF_DIR is a `save_pretrained` folder (config.json + model.safetensors or
pytorch_model.bin). CKPT_DIR gets `params/` (Orbax) and `config.json` =
`{"model": ..., "labels": [...], "source": {...}}`. Prints one summary line;
`--verify` (needs torch and transformers) also runs both models on a random
video and prints the largest absolute difference per output.
"""

import argparse
import sys

from vivit_jax.convert import huggingface

SOURCES = ("huggingface",)


def parse_args(argv):
  parser = argparse.ArgumentParser(prog="python -m vivit_jax.convert",
                                   description=__doc__.split("\n\n")[0])
  parser.add_argument("--from", dest="source", required=True, choices=SOURCES,
                      help="checkpoint format of --input")
  parser.add_argument("--input", required=True, help="checkpoint folder to convert")
  parser.add_argument("--output", required=True, help="model checkpoint folder to write")
  parser.add_argument("--force", action="store_true", help="overwrite --output")
  parser.add_argument("--verify", action="store_true",
                      help="compare outputs with the transformers model (needs torch)")
  return parser.parse_args(argv)


def main(argv=None) -> int:
  args = parse_args(sys.argv[1:] if argv is None else argv)
  conversion = huggingface.convert_huggingface(args.input)
  out = huggingface.save_converted(conversion, args.output, force=args.force)
  labels = len(conversion.labels) if conversion.labels else 0
  print(f"converted {conversion.architecture} -> {conversion.config['name']}: "
        f"{huggingface.param_count(conversion.params):,} params, {labels} labels, "
        f"written to {out}")
  if args.verify:
    from vivit_jax.convert import parity  # pylint: disable=g-import-not-at-top
    diffs = parity.verify(conversion)
    print("max abs difference vs transformers: " +
          ", ".join(f"{k}={v:.3g}" for k, v in diffs.items()))
  return 0


if __name__ == "__main__":
  sys.exit(main())
