"""Training checkpoints: the train state and the data iterator, saved together.

A training checkpoint is one step directory of an Orbax `CheckpointManager`
under `WORKDIR/checkpoints/<step>/` with two items:

  state  the `TrainState` pytree (params, opt_state, EMA, step, rng), saved
         with `StandardSave` (every process writes its own shards);
  data   the data iterator's position (`it.get_state()`), JSON, so that a
         resumed run sees exactly the batches it would have seen.

Config keys read (`config.checkpoint`):
  every_steps       save every this many steps [steps]; 0 = only at the end.
  keep              keep the newest this many checkpoints (`LatestN`).
  keep_best         also keep the best this many by `best_metric` (`BestN`);
                    0 = off. Checkpoints without that metric are not "best".
  best_metric       metric name, e.g. "eval/top1" (saved with the checkpoint).
  best_mode         "max" or "min".
  async_save        True: saves run in background threads; the loop only
                    waits for the device-to-host copy.
  save_on_sigterm   True: SIGTERM (single process) or a JAX preemption
                    notice (multi-process) saves at the next step boundary
                    and the run exits cleanly.

Policies use Orbax's `save_decision_policy` / `preservation_policy` API
(`FixedIntervalPolicy` + `PreemptionCheckpointingPolicy`,
`AnyPreservationPolicy(LatestN, BestN)`), present in orbax 0.12.4 and 0.12.8.

Restoring: `restore_latest` walks the steps newest first; a step that cannot
be read (truncated, zeroed, half-deleted) is moved aside to
`WORKDIR/checkpoints_corrupt/` with one warning line naming the step, the
damaged file and the damage (`damage.py`), and the previous one is tried;
when none is readable, `NoRestorableCheckpoint` says so in one line and
nothing is moved. A checkpoint whose parameter names or shapes differ from
the model's is NOT a corruption: it raises `ParamMismatchError` listing the
differences; one whose optimizer state or EMA differs raises
`StateMismatchError` naming that section (`faults.py`). Arrays are restored
with the shardings of the abstract state passed in, i.e. onto the current
mesh, whatever mesh wrote them. A reader (`read_only=True`, the evaluator,
which may run beside the training) creates nothing and leaves the temporary
directories of saves in flight alone.

Saving: a failed save (no space left, ...) raises `CheckpointSaveError` once,
at the first step boundary after it is known (`check_for_errors`, `save`,
`close`), naming the step and the directory; the half-written step is
removed and the previous checkpoint stays valid. Orbax's and TensorStore's
own tracebacks of a failed read or write are kept off the console
(`noise.py`).
"""

import shutil
import signal
import threading
from typing import Any, Mapping, Optional, Tuple

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from etils import epath
from jax.experimental import multihost_utils
from orbax.checkpoint import checkpoint_managers as policies

from vivit_jax.checkpoints import damage, faults, layout, noise
from vivit_jax.checkpoints import model as model_checkpoints
from vivit_jax.checkpoints.workdir import CHECKPOINTS_DIR
from vivit_jax.common import console
from vivit_jax.common import params as params_lib

STATE_ITEM = "state"
DATA_ITEM = "data"
CORRUPT_DIR = "checkpoints_corrupt"
# State sections besides params whose layout must match, and the keys that shape them.
_STATE_SECTIONS = {"opt_state": "optimizer.* (e.g. optimizer.name)",
                   "ema_params": "optimizer.ema_decay"}


def checkpoint_manager_options(ckpt_config, read_only: bool = False
                               ) -> ocp.CheckpointManagerOptions:
  """Orbax options (save decision + preservation policies) from `config.checkpoint`.

  `read_only`: for a reader (an evaluator, possibly beside a training run): it
  neither creates `checkpoints/` nor deletes the `*.orbax-checkpoint-tmp`
  directories of saves in flight, and starts no background thread.
  """
  if read_only:
    return ocp.CheckpointManagerOptions(read_only=True, save_interval_steps=0, create=False,
                                        cleanup_tmp_directories=False,
                                        enable_async_checkpointing=False)
  save_policies = []
  if ckpt_config.every_steps:
    save_policies.append(policies.FixedIntervalPolicy(int(ckpt_config.every_steps)))
  save_policies.append(policies.PreemptionCheckpointingPolicy())
  keep_policies = [policies.LatestN(n=int(ckpt_config.keep))]
  if ckpt_config.keep_best:
    if ckpt_config.best_mode not in ("max", "min"):
      raise ValueError(f"checkpoint.best_mode must be 'max' or 'min', "
                       f"got {ckpt_config.best_mode!r}")
    metric = ckpt_config.best_metric
    keep_policies.append(policies.BestN(
        get_metric_fn=lambda metrics: metrics[metric],
        reverse=ckpt_config.best_mode == "min",  # BestN keeps the tail of the sort.
        n=int(ckpt_config.keep_best),
        keep_checkpoints_without_metrics=False))
  return ocp.CheckpointManagerOptions(
      save_decision_policy=policies.AnySavePolicy(save_policies),
      preservation_policy=policies.AnyPreservationPolicy(keep_policies),
      enable_async_checkpointing=bool(ckpt_config.async_save),
      cleanup_tmp_directories=True,
      create=True)


@jax.jit
def _all_finite(tree) -> jax.Array:
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)
            if jnp.issubdtype(x.dtype, jnp.inexact)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def _handler_registry() -> ocp.handlers.DefaultCheckpointHandlerRegistry:
  """Handlers known up front, so a fresh manager can read metadata before restoring."""
  registry = ocp.handlers.DefaultCheckpointHandlerRegistry()
  for args in (ocp.args.StandardSave, ocp.args.StandardRestore):
    registry.add(STATE_ITEM, args, ocp.handlers.StandardCheckpointHandler)
  for args in (ocp.args.JsonSave, ocp.args.JsonRestore):
    registry.add(DATA_ITEM, args, ocp.handlers.JsonCheckpointHandler)
  return registry


class TrainCheckpointer:
  """Saves and restores `(TrainState, data iterator state)`; see module docstring.

  All processes construct it and call `save` / `restore_latest` (Orbax
  coordinates the hosts); only process 0 prints.
  """

  def __init__(self, workdir: str, ckpt_config, read_only: bool = False):
    self.directory = epath.Path(workdir) / CHECKPOINTS_DIR
    self.corrupt_directory = epath.Path(workdir) / CORRUPT_DIR
    self._config = ckpt_config
    self._saving_step: Optional[int] = None  # The step of the save in flight, if any.
    self._failure: Optional[BaseException] = None  # A save that failed (reported once).
    self._closed = False
    noise.install()  # Before any save: Orbax logs a failing write from its own threads.
    self._manager = ocp.CheckpointManager(
        self.directory,
        handler_registry=_handler_registry(),
        options=checkpoint_manager_options(ckpt_config, read_only))

  def all_steps(self):
    self._manager.reload()
    return sorted(self._manager.all_steps())

  def latest_step(self) -> Optional[int]:
    return self._manager.latest_step()

  def should_save(self, step: int) -> bool:
    """Whether the save policies ask for a checkpoint at `step`."""
    return bool(self._manager.should_save(step))

  def reached_preemption(self, step: int) -> bool:
    """True on every host at the same step after a JAX preemption notice."""
    return bool(self._manager.reached_preemption(step))

  def save(self, step: int, state, data_state: Mapping[str, Any],
           metrics: Optional[Mapping[str, float]] = None, force: bool = False) -> bool:
    """Starts saving `state` at `step` if the policies (or `force`) say so.

    Refuses (FloatingPointError) a state with a non-finite float, so a NaN
    never reaches disk. Returns whether a save started. Raises
    `CheckpointSaveError` (one line; "no space left on DIR" when the disk is
    full) when this save or the previous, asynchronous one failed.
    """
    if not force and not self._manager.should_save(step):
      return False
    if step in self._manager.all_steps():
      return False
    if not bool(_all_finite(state)):
      raise FloatingPointError(f"refusing to checkpoint step {step}: the train state "
                               "holds NaN or inf values")
    self.wait_until_finished()  # Orbax would wait too; this way a failure names its step.
    metrics = None if metrics is None else {k: float(v) for k, v in metrics.items()}
    try:
      started = self._manager.save(
          step, args=ocp.args.Composite(**{
              STATE_ITEM: ocp.args.StandardSave(state),
              DATA_ITEM: ocp.args.JsonSave(dict(data_state or {})),
          }), metrics=metrics, force=True)
    except Exception as e:  # pylint: disable=broad-except
      raise self._save_failed(step, e) from None
    if started:
      self._saving_step = step
    return started

  def check_for_errors(self) -> None:
    """Raises `CheckpointSaveError` at once if a background save has failed (no waiting)."""
    if self._failure is not None or self._saving_step is None:
      return
    try:
      self._manager.check_for_errors()
    except Exception as e:  # pylint: disable=broad-except
      raise self._save_failed(self._saving_step, e) from None

  def _save_failed(self, step: int, error: BaseException) -> faults.CheckpointSaveError:
    """Quiets Orbax's aftermath, removes the half-written step; the error to raise."""
    with noise.aftermath(keep=True):
      self._failure = error
      try:
        self._manager.wait_until_finished()
      except Exception:  # pylint: disable=broad-except
        pass  # The same failure, seen again.
      if jax.process_index() == 0:
        for partial in self.directory.glob(f"{step}.orbax-checkpoint-tmp*"):
          shutil.rmtree(str(partial), ignore_errors=True)
    previous = [s for s in self._manager.all_steps() if s < step]
    kept = (f"the checkpoint of step {max(previous)} is intact and a relaunch resumes "
            "from it" if previous else "no earlier checkpoint exists")
    if faults.is_out_of_space(error):
      return faults.CheckpointSaveError(
          f"checkpoint save failed at step {step}: no space left on {self.directory}",
          f"{self.directory}/{step}",
          f"free space there (or lower checkpoint.keep / checkpoint.keep_best), then re-run "
          f"the same command; {kept}", step)
    return faults.CheckpointSaveError(
        f"checkpoint save failed at step {step}: {damage.root_cause(error)}",
        f"{self.directory}/{step}", f"fix the cause, then re-run the same command; {kept}",
        step)

  def _check_structure(self, step: int, stored, abstract_state) -> None:
    """ParamMismatchError / StateMismatchError if `stored` cannot fill `abstract_state`."""
    stored_params = stored["params"] if isinstance(stored, Mapping) else stored.params
    params_lib.check_params_match(
        abstract_state.params, stored_params,
        f"training checkpoint {self.directory / str(step)}")
    for section, keys in _STATE_SECTIONS.items():
      theirs = layout.layout(stored.get(section) if isinstance(stored, Mapping)
                       else getattr(stored, section))
      ours = layout.layout(getattr(abstract_state, section))
      if theirs == ours:
        continue
      raise faults.StateMismatchError(
          f"checkpoint step {step} does not fit this run: its {section} differs "
          f"({layout.difference(theirs, ours)}), so {keys} changed",
          str(self.directory / str(step)),
          f"resume with the {keys} values of the workdir's config.json, or train in a new "
          "--workdir")

  def _move_aside(self, step: int) -> epath.Path:
    """Moves an unreadable step directory out of the manager's sight; returns where to."""
    multihost_utils.sync_global_devices(f"vivit_jax_corrupt_{step}_begin")
    target = self.corrupt_directory / str(step)
    suffix = 0
    while target.exists():
      suffix += 1
      target = self.corrupt_directory / f"{step}.{suffix}"
    if jax.process_index() == 0:
      self.corrupt_directory.mkdir(parents=True, exist_ok=True)
      (self.directory / str(step)).rename(target)
    multihost_utils.sync_global_devices(f"vivit_jax_corrupt_{step}_end")
    self._manager.reload()
    return target

  def restore(self, step: int, abstract_state) -> Tuple[Any, dict]:
    """`(state, data_state)` at `step`, arrays placed as `abstract_state` says."""
    metadata = self._manager.item_metadata(step)[STATE_ITEM]
    if metadata is None:
      raise ValueError(f"step {step} has no readable '{STATE_ITEM}' metadata")
    self._check_structure(step, model_checkpoints.stored_tree(metadata), abstract_state)
    restored = self._manager.restore(step, args=ocp.args.Composite(**{
        STATE_ITEM: ocp.args.StandardRestore(abstract_state),
        DATA_ITEM: ocp.args.JsonRestore(),
    }))
    return restored[STATE_ITEM], dict(restored[DATA_ITEM] or {})

  def restore_latest(self, abstract_state) -> Optional[Tuple[int, Any, dict]]:
    """The newest readable checkpoint as `(step, state, data_state)`, or None.

    Each damaged checkpoint skipped on the way is reported in one warning
    line (step, file, what is wrong; `damage.describe`) and moved to
    `WORKDIR/checkpoints_corrupt/`. Orbax's and TensorStore's aftermath of a
    failed read is kept off the console (`noise`).

    Args:
      abstract_state: a `TrainState` of arrays or `jax.ShapeDtypeStruct`s with
        the target shardings (those of the current mesh).

    Raises:
      ParamMismatchError: the newest checkpoint's parameters differ from
        `abstract_state.params` (names and shapes listed).
      StateMismatchError: its optimizer state / EMA / step layout differs.
      NoRestorableCheckpoint: every checkpoint is damaged (nothing moved).
    """
    noise.install()
    abstract_state = params_lib.abstract_like(abstract_state)
    failed = []
    for step in reversed(self.all_steps()):
      try:
        state, data_state = self.restore(step, abstract_state)
      except (params_lib.ParamMismatchError, faults.StateMismatchError):
        raise
      except Exception as e:  # pylint: disable=broad-except
        with noise.aftermath():
          failed.append((step, damage.describe(str(self.directory / str(step)), e)))
        continue
      for bad_step, reason in failed:
        target = self._move_aside(bad_step)
        console.warn(f"checkpoint step {bad_step} cannot be restored "
                           f"({self.directory / str(bad_step)}): {reason}; moved it to {target}, "
                           f"resuming from step {step}")
      return step, state, data_state
    if failed:
      reasons = "; ".join(f"step {s}: {r}" for s, r in failed)
      damaged = any("no damaged file found" not in r for _, r in failed)
      fix = (f"restore {self.directory} from a backup, or move it aside to train from scratch"
             if damaged else "the files look intact: re-run with --verbosity=0 for Orbax's "
             "log and report it")
      raise faults.NoRestorableCheckpoint(
          f"none of the {len(failed)} checkpoint(s) can be restored: {reasons}",
          str(self.directory), fix)
    return None

  def wait_until_finished(self) -> None:
    """Waits for a background save; raises `CheckpointSaveError` if it failed."""
    if self._failure is not None:
      return
    try:
      self._manager.wait_until_finished()
    except Exception as e:  # pylint: disable=broad-except
      raise self._save_failed(self._saving_step, e) from None

  def close(self) -> None:
    """Finishes the background save (raising `CheckpointSaveError` if it failed) and closes."""
    if self._closed:
      return
    self._closed = True
    try:
      self.wait_until_finished()
      # The manager's clean-up of old temporary directories runs in a thread
      # that `close` does not join; a process exiting right after (a run that
      # stopped before its first save) would shut the interpreter under it.
      getattr(self._manager, "_maybe_await_cleanup_tmp_directory", lambda: None)()
    finally:
      try:
        self._manager.close()
      except Exception:  # pylint: disable=broad-except
        if self._failure is None:
          raise


class StopRequest:
  """Turns SIGTERM into a flag the training loop polls at step boundaries.

  Installed only in single-process runs: with several processes, JAX's
  preemption service receives the signal and `TrainCheckpointer.
  reached_preemption` makes every host stop at the same step instead.
  """

  def __init__(self):
    self._event = threading.Event()
    self._previous = None
    self.installed = False

  def _handler(self, signum, frame):
    del frame
    self._event.set()
    console.warn(f"received signal {signum}; saving a checkpoint at the next "
                       "step boundary, then exiting")

  def install(self) -> "StopRequest":
    if jax.process_count() == 1 and threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._handler)
      self.installed = True
    return self

  def uninstall(self) -> None:
    if self.installed:
      signal.signal(signal.SIGTERM, self._previous or signal.SIG_DFL)
      self.installed = False

  @property
  def requested(self) -> bool:
    return self._event.is_set()

