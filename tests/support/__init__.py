"""Helpers shared by the tests (not tests themselves).

  datasets    real encoded videos (PyAV mp4s), DMVR TFRecords, list files, corrupt files
  train_runs  a tiny generated dataset and overrides for seconds-long main-job runs
  videos      a tiny classifier checkpoint and frame-numbered mp4s for predict / stream
  wheels      the GPU image's wheels (scripts/gpu_wheels.txt) rebuilt from this venv
  gpu_image/  a `sitecustomize` that simulates the GPU image (`gpu_image_env` below)

`tests/conftest.py` puts `tests/` on `sys.path`, so a test imports them as
`from support import datasets`.
"""

import os

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(TESTS_DIR)
# `sitecustomize` of the simulated GPU image (tests/support/gpu_image/).
GPU_IMAGE_DIR = os.path.join(TESTS_DIR, "support", "gpu_image")


def gpu_image_env(missing=None, pythonpath=()):
  """`os.environ` for a subprocess on the simulated GPU image.

  `missing`: top-level packages that cannot be imported (default: all the
  image lacks, `gpu_image/sitecustomize.GPU_IMAGE_MISSING`); `pythonpath`:
  further folders after the blocker and the repository, the only places a
  missing package may still come from.
  """
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join((GPU_IMAGE_DIR, REPO) + tuple(pythonpath))
  if missing is not None:
    env["SIMULATED_MISSING"] = ",".join(missing)
  else:
    env.pop("SIMULATED_MISSING", None)
  return env
