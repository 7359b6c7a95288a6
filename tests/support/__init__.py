"""Helpers shared by the tests (not tests themselves).

  datasets    real encoded videos (PyAV mp4s), DMVR TFRecords, list files, corrupt files
  train_runs  a tiny generated dataset and overrides for seconds-long main-job runs
  videos      a tiny classifier checkpoint and frame-numbered mp4s for predict / stream

`tests/conftest.py` puts `tests/` on `sys.path`, so a test imports them as
`from support import datasets`.
"""

import os

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(TESTS_DIR)
