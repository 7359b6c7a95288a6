"""Published weights in: Hugging Face ViViT / VideoMAE checkpoints -> our models.

    from vivit_jax.convert import from_huggingface
    model, config, params = from_huggingface("dir_written_by_save_pretrained")

Command line (writes an Orbax model checkpoint, see `vivit_jax.checkpoints`):

    python -m vivit_jax.convert --from huggingface --input DIR --output CKPT_DIR

`parity` compares a converted model against the transformers original (needs
torch and transformers; nothing else here does).
"""

from vivit_jax.convert.hf_config import ARCHITECTURES, UnsupportedCheckpointError
from vivit_jax.convert.huggingface import (Conversion, convert_huggingface,
                                           from_huggingface, param_count, save_converted)

__all__ = ["ARCHITECTURES", "Conversion", "UnsupportedCheckpointError",
           "convert_huggingface", "from_huggingface", "param_count", "save_converted"]
