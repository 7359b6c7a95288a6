"""Converts published weights into a model checkpoint.

    vivit-convert --from huggingface --input HF_DIR --output CKPT_DIR \
        [--force] [--verify]
    vivit-convert --from videomae --input FILE.pth --output CKPT_DIR \
        [--num-heads N --decoder-num-heads N --num-frames 16 --image-size 224]
    vivit-convert --from scenic --input CHECKPOINT --output CKPT_DIR \
        [--num-frames T | --image-size S] [--pooling gap|0]
    vivit-convert --from vit_npz|hf_vit --input PATH --output CKPT_DIR \
        --variant factorised_encoder --num-frames 32 [--image-size 224 --tubelet-size 2
        --inflation central_frame|average --num-classes N --temporal-layers 4]

HF_DIR is a `save_pretrained` folder (config.json + model.safetensors or
pytorch_model.bin). videomae: a `.pth` of VideoMAE's release. scenic: a
scenic ViViT checkpoint (Flax msgpack, `.npz` or Orbax folder). vit_npz: a
vision_transformer / big_vision 2D ViT (`.npz`, msgpack or Orbax); hf_vit: a
transformers ViT folder; both are inflated into the video model the flags
describe. CKPT_DIR gets `params/` (Orbax) and `config.json` =
`{"model": ..., "labels": [...], "source": {...}}`. Prints one summary line;
`--verify` (huggingface only; needs torch and transformers) also runs both
models on a random video and prints the largest absolute difference per output.
"""

import argparse
import sys

from vivit_jax.common import errors
from vivit_jax.convert import conversion as conversion_lib
from vivit_jax.convert import huggingface

SOURCES = ("huggingface", "videomae", "scenic", "vit_npz", "hf_vit")


def parse_args(argv):
  parser = argparse.ArgumentParser(prog="vivit-convert",
                                   description=__doc__.split("\n\n")[0])
  parser.add_argument("--from", dest="source", required=True, choices=SOURCES,
                      help="checkpoint format of --input")
  parser.add_argument("--input", required=True, help="checkpoint file or folder to convert")
  parser.add_argument("--output", required=True, help="model checkpoint folder to write")
  parser.add_argument("--force", action="store_true", help="overwrite --output")
  parser.add_argument("--verify", action="store_true",
                      help="compare outputs with the transformers model (huggingface only)")
  parser.add_argument("--labels", help="class names, one per line (not huggingface)")
  video = parser.add_argument_group("input geometry (videomae, scenic, vit_npz, hf_vit)")
  video.add_argument("--num-frames", type=int, help="frames per clip")
  video.add_argument("--image-size", type=int, help="frame height = width")
  mae = parser.add_argument_group("videomae")
  mae.add_argument("--num-heads", type=int, help="encoder heads (default: by width)")
  mae.add_argument("--decoder-num-heads", type=int, help="decoder heads (default: by width)")
  mae.add_argument("--allow-pickle", action="store_true",
                   help="unpickle Python objects stored beside the weights (runs code from "
                   "the file: trusted files only)")
  scenic = parser.add_argument_group("scenic")
  scenic.add_argument("--pooling", default="gap", choices=("gap", "0"),
                      help="pooling of checkpoints without a CLS token")
  image = parser.add_argument_group("vit_npz / hf_vit: the video model to inflate into")
  image.add_argument("--variant", default="spatio_temporal",
                     choices=("spatio_temporal", "factorised_encoder",
                              "factorised_self_attention", "factorised_dot_product"))
  image.add_argument("--tubelet-size", type=int, default=2)
  image.add_argument("--inflation", default="central_frame",
                     choices=("central_frame", "average"))
  image.add_argument("--num-classes", type=int, default=0, help="fresh head width")
  image.add_argument("--temporal-layers", type=int, default=4,
                     help="factorised_encoder: temporal encoder depth")
  image.add_argument("--classifier", choices=("token", "gap"),
                     help="default: token when the ViT has a CLS token and the variant "
                     "takes one")
  image.add_argument("--seed", type=int, default=0, help="seed of the fresh parameters")
  return parser.parse_args(argv)


def convert(args) -> conversion_lib.Conversion:
  """The `Conversion` the parsed flags ask for."""
  # pylint: disable=g-import-not-at-top
  from vivit_jax.convert import common
  if args.source == "huggingface":
    return huggingface.convert_huggingface(args.input)
  labels = common.read_labels(args.labels)
  if args.source == "videomae":
    from vivit_jax.convert import videomae_original
    return videomae_original.convert_videomae(
        args.input, num_heads=args.num_heads, decoder_num_heads=args.decoder_num_heads,
        num_frames=args.num_frames or 16, image_size=args.image_size or 224, labels=labels,
        allow_pickle=args.allow_pickle)
  if args.source == "scenic":
    from vivit_jax.convert import scenic
    return scenic.convert_scenic(args.input, num_frames=args.num_frames,
                                 image_size=args.image_size, pooling=args.pooling,
                                 labels=labels)
  from vivit_jax.convert import image_vit
  spec = image_vit.VideoSpec(
      variant=args.variant, num_frames=args.num_frames or 32, image_size=args.image_size,
      tubelet_size=args.tubelet_size, inflation=args.inflation,
      num_classes=args.num_classes, temporal_layers=args.temporal_layers,
      classifier=args.classifier, seed=args.seed)
  if args.source == "vit_npz":
    return image_vit.convert_vit_npz(args.input, spec, labels)
  return image_vit.convert_hf_vit(args.input, spec, labels)


@errors.command
def main(argv=None) -> int:
  args = parse_args(sys.argv[1:] if argv is None else argv)
  if args.verify and args.source != "huggingface":
    raise errors.UserError("--verify compares with transformers", "--verify",
                                "use it only with --from huggingface")
  conversion = convert(args)
  out = conversion_lib.save_converted(conversion, args.output, force=args.force)
  labels = len(conversion.labels) if conversion.labels else 0
  print(f"converted {conversion.architecture} -> {conversion.config['name']}: "
        f"{conversion_lib.param_count(conversion.params):,} params, {labels} labels, "
        f"written to {out}")
  if args.verify:
    from vivit_jax.convert import parity  # pylint: disable=g-import-not-at-top
    diffs = parity.verify(conversion)
    print("max abs difference vs transformers: " +
          ", ".join(f"{k}={v:.3g}" for k, v in diffs.items()))
  return 0


if __name__ == "__main__":
  sys.exit(main())
