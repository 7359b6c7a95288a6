"""The package imports without TensorFlow and a model builds from a config."""

import subprocess
import sys

import pytest

from vivit_jax.models import build_model


def test_models_import_without_tensorflow():
  code = ("import sys; import vivit_jax.models, vivit_jax.models.flops if False else None; "
          "assert 'tensorflow' not in sys.modules, 'models imported TensorFlow'")
  subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_model_key_names_itself():
  with pytest.raises(ValueError, match="hiden_size"):
    build_model({"name": "vivit", "hiden_size": 3})
