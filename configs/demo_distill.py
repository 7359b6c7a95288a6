r"""Demo distillation: a small ViViT student learns from the demo classifier.

The teacher is a model checkpoint (`WORKDIR/model` of a classifier run, e.g.
`configs/demo_tfrecord.py`: the demo encoder, 8 frames at stride 2). The
student is a quarter-width, two-layer ViViT that sees half the frames (4 at
stride 4: the same clip span, every 2nd of the teacher's frames), trained
with the teacher's softened logits (`distill.alpha`, `distill.temperature`)
besides the labels. `scripts/distill_demo.py` measures it against the
teacher and the same student trained from scratch (`--config.mode=train`).

    python -m vivit_jax.main --config=configs/demo_tfrecord.py --workdir=demo_workdir/teacher
    python -m vivit_jax.main --config=configs/demo_distill.py --workdir=demo_workdir/distill \
        --config.distill.teacher=demo_workdir/teacher/model
"""

import os
import sys

from vivit_jax.train.experiment import experiment_config, finalize

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # configs/ siblings
import demo_common  # noqa: E402  pylint: disable=wrong-import-position

STUDENT = dict(hidden_size=48, num_layers=2, num_heads=2, mlp_dim=96, patch_size=8,
               tubelet_size=2)


def get_config():
  model = dict(name="vivit", variant="spatio_temporal", **STUDENT,
               num_classes=demo_common.NUM_CLASSES, classifier="token",
               pos_embedding="learned")
  config = experiment_config("distill", model)
  demo_common.set_demo_data(config.data)
  config.data.num_frames = demo_common.NUM_FRAMES // 2
  config.data.stride = demo_common.FRAME_STRIDE * 2
  demo_common.set_demo_training(config)
  config.distill.teacher = os.path.join(demo_common.REPO, "demo_workdir", "teacher", "model")
  config.distill.temperature = 2.0
  config.distill.alpha = 0.7
  config.distill.kind = "logits"
  return finalize(config)
