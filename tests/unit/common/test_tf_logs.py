"""No TensorFlow C++ start-up lines on any command (vivit_jax/common/tf_logs.py), while
our own warnings and TensorFlow's Python ones still reach stderr."""

import os
import subprocess
import sys

from support import REPO

TF_LINES = ("absl::InitializeLog", "oneDNN custom operations", "cpu_feature_guard")
CODE = """
import sys, warnings
import vivit_jax.data.builder  # imports tensorflow
import tensorflow as tf
print(int(tf.reduce_sum(tf.constant([1, 2]))))
warnings.warn("our own warning")
print("our own error line", file=sys.stderr)
"""


def _run(**env):
  environment = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
  return subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True,
                        cwd=REPO, timeout=300, env=dict(environment, **env))


def test_importing_tensorflow_through_the_package_prints_no_cpp_lines():
  quiet = _run()
  assert quiet.returncode == 0, quiet.stderr
  assert quiet.stdout.strip() == "3"
  assert not [line for line in TF_LINES if line in quiet.stderr], quiet.stderr
  assert "UserWarning: our own warning" in quiet.stderr
  assert "our own error line" in quiet.stderr


def test_tf_cpp_min_log_level_0_shows_them_again():
  loud = _run(TF_CPP_MIN_LOG_LEVEL="0")
  assert loud.returncode == 0, loud.stderr
  assert "cpu_feature_guard" in loud.stderr and "absl::InitializeLog" in loud.stderr
