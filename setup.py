"""vivit_jax: video transformers (ViViT, VideoMAE) in JAX/Flax."""

from setuptools import find_packages, setup

# Ranges admit both machines this project runs on: Python 3.11 CPU boxes
# (jax 0.10.2, flax 0.12.8) and the Python 3.12 GPU image (jax 0.11.2,
# flax 0.12.10, orbax-checkpoint 0.12.4). Models, train steps, checkpoints
# and benchmarks import without TensorFlow, TFDS, PyAV and dm-pix; only
# `vivit_jax.data` needs them at import. dm-pix stays in DATA: the steps
# import it lazily, only for on-device colour jitter and future-masking
# forecast metrics. The GPU image lacks some CORE packages: scripts/gpu_wheels.sh.
CORE = [
    "jax>=0.10.2,<0.13",
    "flax>=0.12.8,<0.12.13",
    "optax>=0.2.4,<0.3",
    "orbax-checkpoint>=0.12.4,<0.13",
    "chex>=0.1.90,<0.2",
    "ml-collections>=1.0,<2",
    "numpy>=1.26,<3",
    "tensorboardX>=2.6,<3",
    "tqdm>=4.60,<5",
    "pillow>=10,<13",
    "safetensors>=0.4,<1",
    "qwix>=0.1.8,<0.2",  # int8 post-training quantization (vivit_jax.compress)
]
DATA = [
    "tensorflow-cpu>=2.18,<2.22",
    "tensorflow-datasets>=4.9.7,<5",
    "av>=12,<20",
    "google-crc32c>=1.5,<2",  # TFRecord checksums (vivit_jax.data.integrity)
    "importlib_resources>=5",  # tensorflow-datasets imports it without declaring it
    "dm-pix>=0.4.3,<0.5",
]
# ONNX export (`vivit-export --format onnx`) and ONNX Runtime serving
# (`--backend onnxruntime`). jax2onnx itself is installed apart, without its
# dependencies: its metadata pins orbax-checkpoint below CORE's and lists
# packages the export never imports. Its pin has one home,
# vivit_jax/common/onnx_deps.py (JAX2ONNX), which the Makefile reads.
ONNX = ["onnx>=1.20.1,<2", "onnx-ir>=1.1,<2", "onnxruntime>=1.24.1,<2"]
# torch==2.13.0 installs from the CPU wheel kept on the CPU machines. The
# CPU race exports the Hugging Face model with torch.onnx (onnx, onnxscript).
PARITY = ["torch==2.13.0", "transformers>=4.46,<6", "onnx>=1.20.1,<2", "onnxscript>=0.5,<1",
          "onnxruntime>=1.24.1,<2"]
# TensorBoard to view the event files (`make demo` prints the command; its
# environment is the test one).
VIEW = ["tensorboard>=2.18,<3"]
TEST = ["pytest>=8,<10", "pytest-xdist>=3.5,<4"] + DATA + PARITY + VIEW + ONNX
# The commands (`python -m <module>` runs the same code).
CONSOLE_SCRIPTS = [
    "vivit-train = vivit_jax.main:run",
    "vivit-evaluate = vivit_jax.train.evaluation.evaluate:run",
    "vivit-predict = vivit_jax.serving.predict:main",
    "vivit-stream = vivit_jax.serving.stream:main",
    "vivit-export = vivit_jax.export.__main__:main",
    "vivit-convert = vivit_jax.convert.__main__:main",
    "vivit-make-tfrecords = vivit_jax.data.make_tfrecords:main",
    "vivit-compress = vivit_jax.compress.__main__:main",
    "vivit-forecast = vivit_jax.train.evaluation.forecast:run",
]
# `make mutation` (scripts/mutation.py); not part of `make test`.
MUTATION = ["cosmic-ray>=8.4,<9"]

setup(
    name="vivit_jax",
    version="0.1.0",
    description="ViViT and masked video autoencoders in JAX/Flax, from one CPU to pods.",
    packages=find_packages(include=["vivit_jax", "vivit_jax.*"]),
    python_requires=">=3.11",
    install_requires=CORE,
    extras_require={"data": DATA, "parity": PARITY, "test": TEST, "view": VIEW, "onnx": ONNX,
                    "mutation": MUTATION},
    entry_points={"console_scripts": CONSOLE_SCRIPTS},
)
