"""A simulated GPU image: packages it lacks cannot be imported from site-packages.

Put this folder first on `PYTHONPATH` and every Python process started
with that environment (subprocesses included) imports this module at
startup (`site` imports `sitecustomize`). It replaces the standard
`PathFinder` on `sys.meta_path` with one that looks for the top-level
packages named in `SIMULATED_MISSING` (comma-separated; default
`GPU_IMAGE_MISSING`, what the lent GPU image lacks) only in the other
`PYTHONPATH` folders, never in site-packages. So `import tensorflow` raises
`ModuleNotFoundError` and `importlib.util.find_spec("tensorflow")` is
`None`, exactly as on the image, while a package installed into a folder
on `PYTHONPATH` (the wheels `scripts/gpu_suite.sh` installs into its
temporary target) imports from there and only from there.

    PYTHONPATH=tests/support/gpu_image python -c "import ml_collections"   # fails
"""

import importlib.machinery
import os
import sys

GPU_IMAGE_MISSING = ("ml_collections", "dm_pix", "qwix", "tensorboardX", "tensorflow",
                     "tensorflow_datasets", "av")

_HERE = os.path.dirname(os.path.abspath(__file__))
_MISSING = frozenset(
    name.strip() for name in os.environ.get("SIMULATED_MISSING",
                                            ",".join(GPU_IMAGE_MISSING)).split(",")
    if name.strip())
# Folders a missing package may still come from: PYTHONPATH, less this one.
_ALLOWED = [os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
            if p and os.path.abspath(p) != _HERE]


class SimulatedImageFinder(importlib.machinery.PathFinder):
  """`PathFinder` that searches only `_ALLOWED` for the `_MISSING` top-level names."""

  @classmethod
  def find_spec(cls, fullname, path=None, target=None):
    if path is None and fullname in _MISSING:
      path = _ALLOWED
    return super().find_spec(fullname, path, target)


sys.meta_path[:] = [SimulatedImageFinder if finder is importlib.machinery.PathFinder else finder
                    for finder in sys.meta_path]
