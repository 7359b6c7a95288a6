r"""The main job: masked pretraining, fine-tuning / training, or evaluation.

    vivit-train --config=configs/demo_finetune.py --workdir=/tmp/run \
        [--config.train.num_steps=2000 --config.optimizer.learning_rate=3e-4 ...]

`--config` is a Python file whose `get_config()` returns a locked
`ConfigDict` (see `vivit_jax/train/experiment.py` for every key); any key can
be overridden as `--config.<path>=<value>`, and a key that does not exist, or
a value of the wrong type, fails at once naming it. Re-running the same
command on the same workdir resumes from its newest checkpoint.

A user mistake (a bad key or value, missing data, a batch or mesh that does
not fit the devices, frames or image size that do not fit the model, a
checkpoint of another model) is found at start-up, before anything is
compiled or written, and ends in one line `error: <what> (<where>): <fix>`
with exit status 2 (`vivit_jax/common/errors.py`; the traceback too with
`--verbosity=1` or `VIVIT_TRACEBACK=1`). One found later ends the same way:
a label outside `data.num_classes` met while streaming, a workdir whose
`config.json` is damaged. A training fault (a non-finite
loss, too many skipped steps) ends in one `error:` line with status 1.

Multi-host: run the same command on every host; `jax.distributed` is
initialised from `--config.distributed.*` or the environment
(`JAX_COORDINATOR_ADDRESS`, `JAX_NUM_PROCESSES`, `JAX_PROCESS_ID`; or
`--config.distributed.auto=True` for SLURM / Cloud TPU / Kubernetes
detection). Each process reads its shard of the data; process 0 writes logs.
"""

import sys
import traceback

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from vivit_jax.common import errors

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file (a Python file with get_config()).",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and logs.")


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # Orbax's INFO lines drown the progress.
  config = _CONFIG.value
  # Imported after flag parsing so `--help` and config errors come fast.
  from vivit_jax.train import distributed  # pylint: disable=g-import-not-at-top
  distributed.maybe_initialize_distributed(config)
  from vivit_jax.train import loop  # pylint: disable=g-import-not-at-top
  try:
    loop.run(config, _WORKDIR.value)
  except FloatingPointError as e:
    # The message names the step and the key to change; a traceback adds nothing.
    if errors.traceback_wanted(sys.argv):
      traceback.print_exc()
    print(f"error: {errors.one_line(e)}", file=sys.stderr, flush=True)
    sys.exit(1)


def run() -> None:
  """The `vivit-train` command (`python -m vivit_jax.main`)."""
  flags.mark_flags_as_required(["config", "workdir"])
  errors.run_absl(main)


if __name__ == "__main__":
  run()
