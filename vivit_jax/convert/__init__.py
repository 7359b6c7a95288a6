"""Published weights in: Hugging Face ViViT / VideoMAE checkpoints, VideoMAE's
own release, scenic ViViT checkpoints and 2D image ViTs -> our models.

    from vivit_jax.convert import from_huggingface
    model, config, params = from_huggingface("dir_written_by_save_pretrained")

Command line (writes an Orbax model checkpoint, see `vivit_jax.checkpoints`):

    python -m vivit_jax.convert --from huggingface --input DIR --output CKPT_DIR

Other sources (`--from videomae | scenic | vit_npz | hf_vit`): see
`videomae_original`, `scenic` and `image_vit`; each returns a `Conversion`.

`parity` compares a converted model against the transformers original (needs
torch and transformers; nothing else here does).
"""

from vivit_jax.convert.hf_config import ARCHITECTURES, UnsupportedCheckpointError
from vivit_jax.convert.conversion import Conversion, param_count, save_converted
from vivit_jax.convert.huggingface import convert_huggingface, from_huggingface
from vivit_jax.convert.image_vit import convert_hf_vit, convert_vit_npz
from vivit_jax.convert.scenic import convert_scenic
from vivit_jax.convert.videomae_original import convert_videomae

__all__ = ["ARCHITECTURES", "Conversion", "UnsupportedCheckpointError",
           "convert_hf_vit", "convert_huggingface", "convert_scenic", "convert_videomae",
           "convert_vit_npz", "from_huggingface", "param_count", "save_converted"]
