"""The restore-noise filter drops exactly the aftermath of Orbax's failed
reads: abandoned Orbax / TensorStore coroutines and closed-loop callbacks,
and lets every other unraisable exception through."""

import gc
import logging
import sys
import types
import warnings

from vivit_jax.checkpoints import noise


def _unraisable(obj, error):
  return types.SimpleNamespace(exc_type=type(error), exc_value=error,
                               exc_traceback=error.__traceback__, err_msg=None, object=obj)


def _coroutine_from(filename):
  namespace = {}
  exec(compile("async def read():\n  raise ValueError('reading array index')\n", filename,
               "exec"), namespace)
  return namespace["read"]()


def test_abandoned_orbax_coroutine_is_dropped_and_others_are_not():
  seen = []
  hook = noise._make_unraisable_hook(seen.append, state={"after_failure": False, "dropped": 0})
  orbax_coroutine = _coroutine_from("/site-packages/orbax/checkpoint/serialization.py")
  user_coroutine = _coroutine_from("/home/me/my_model.py")
  try:
    hook(_unraisable(orbax_coroutine, ValueError("reading array index")))
    hook(_unraisable(user_coroutine, ValueError("mine")))
    hook(_unraisable(None, RuntimeError("Event loop is closed")))  # Not from call_soon_threadsafe.
  finally:
    orbax_coroutine.close()
    user_coroutine.close()
  assert [str(u.exc_value) for u in seen] == ["mine", "Event loop is closed"]


def test_everything_is_dropped_inside_a_failure_aftermath():
  noise.install()
  before = noise.dropped()
  with noise.aftermath():
    sys.unraisablehook(_unraisable(None, KeyError("anything")))
  assert noise.dropped() == before + 1


def _error_raised_in(filename):
  namespace = {}
  exec(compile("def read():\n  raise ValueError('reading array index')\n", filename, "exec"),
       namespace)
  try:
    namespace["read"]()
  except ValueError:
    return sys.exc_info()
  raise AssertionError("read() did not raise")


def test_asyncio_reports_of_orbax_futures_are_dropped_whatever_the_future_class():
  report = "_GatheringFuture exception was never retrieved\nfuture: <_GatheringFuture finished>"
  orbax = _error_raised_in("/site-packages/orbax/checkpoint/_src/serialization.py")
  mine = _error_raised_in("/home/me/my_model.py")
  record = lambda exc_info: logging.LogRecord("asyncio", logging.ERROR, "base_events.py", 1,
                                              report, None, exc_info)
  reports = noise._AsyncioTaskReports()
  assert not reports.filter(record(orbax))
  assert reports.filter(record(mine))
  assert reports.filter(logging.LogRecord("asyncio", logging.ERROR, "x.py", 1,
                                          "something else", None, orbax))


def test_unawaited_coroutines_abandoned_inside_a_failure_aftermath_print_no_warning():
  with warnings.catch_warnings(record=True) as seen:
    warnings.simplefilter("always")
    with noise.aftermath():
      abandoned = _coroutine_from("/site-packages/orbax/checkpoint/serialization.py")
      del abandoned
    mine = _coroutine_from("/home/me/my_model.py")
    del mine
    gc.collect()
  assert [str(w.message) for w in seen] == ["coroutine 'read' was never awaited"]
