"""TFDS builder `vivit_demo_motion`: the demo dataset (see `synthetic.py`).

Generated offline from code, so `tfds.builder("vivit_demo_motion",
data_dir=...).download_and_prepare()` works without a network; the data
pipeline prepares it on first use. Configs: "default" (1024 train / 256 test
videos of 16 frames at 32x32) and "small" (64 / 32 videos of 8 frames, for
tests); "bench256" (32 / 8 videos of 64 frames at 256x256) feeds the input
benchmark. Features: "video" `(T, size, size, 3)` uint8 as JPEG frames, "label"
the direction of motion.
"""

import dataclasses

from etils import epath
import tensorflow_datasets as tfds

from vivit_jax.data.demo import synthetic

NAME = "vivit_demo_motion"


@dataclasses.dataclass
class DemoMotionConfig(tfds.core.BuilderConfig):
  num_train: int = 1024
  num_test: int = 256
  num_frames: int = 16
  size: int = 32
  num_classes: int = 4


class VivitDemoMotion(tfds.core.GeneratorBasedBuilder):
  """Shapes moving over a smooth background; the class is their direction."""

  VERSION = tfds.core.Version("2.0.0")
  RELEASE_NOTES = {"1.0.0": "First version.",
                   "2.0.0": "Several shapes in smooth motion over smooth backgrounds."}
  BUILDER_CONFIGS = [
      DemoMotionConfig(name="default", description="16 frames at 32x32, 4 directions."),
      DemoMotionConfig(name="small", description="8 frames at 32x32, for tests.",
                       num_train=64, num_test=32, num_frames=8),
      DemoMotionConfig(name="bench256", description="64 frames at 256x256, for "
                       "scripts/benchmark_input.py.", num_train=32, num_test=8,
                       num_frames=64, size=256),
  ]

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    # TFDS's own lookup needs the `importlib_resources` backport, which it
    # does not declare as a dependency on Python >= 3.9.
    return epath.Path(__file__)

  def _info(self):
    config = self.builder_config
    return self.dataset_info_from_configs(
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "video": tfds.features.Video(
                (config.num_frames, config.size, config.size, 3), encoding_format="jpeg"),
            "label": tfds.features.ClassLabel(
                names=list(synthetic.class_names(config.num_classes))),
        }),
        supervised_keys=("video", "label"))

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download.
    config = self.builder_config
    return {"train": self._generate_examples(config.num_train, seed=0),
            "test": self._generate_examples(config.num_test, seed=1)}

  def _generate_examples(self, num_videos: int, seed: int):
    config = self.builder_config
    videos = synthetic.iterate_demo_videos(num_videos, config.num_frames, config.size,
                                           config.num_classes, seed)
    for index, (video, label) in enumerate(videos):
      yield index, {"video": video, "label": label}
