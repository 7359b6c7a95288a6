"""`vivit_jax.common.errors`: the one-line form, the translation of the library
exceptions of a user mistake, the command wrapper and the traceback switch."""

import os

import pytest
from absl import flags

from support import train_runs as fx
from vivit_jax.common import errors
from vivit_jax.checkpoints import ParamMismatchError
from vivit_jax.common.errors import UserError


def test_user_error_is_one_line_what_where_fix_and_a_value_error():
  error = UserError("train.num_steps=0\n  trains nothing", "--config.train.num_steps",
                    "set it >= 1")
  assert isinstance(error, ValueError)
  assert error.line == ("error: train.num_steps=0 trains nothing (--config.train.num_steps): "
                        "set it >= 1")


def _lookup_error(lookup):
  config = fx.load_config("demo_finetune.py", {})
  try:
    lookup(config)
  except (AttributeError, KeyError) as error:
    return error
  raise AssertionError("the key exists")


@pytest.mark.parametrize("lookup, bad, argv, where, suggestion", [
    (lambda c: c.train.num_stepz, "num_stepz", ["prog", "--config.train.num_stepz=3"],
     "--config.train.num_stepz", "--config.train.num_steps"),
    (lambda c: c["trainx"]["num_steps"], "trainx", ["prog", "--config.trainx.num_steps=3"],
     "--config.trainx.num_steps", "--config.train.num_steps"),
])
def test_unknown_config_key_names_the_flag_and_keeps_did_you_mean(lookup, bad, argv, where,
                                                                  suggestion):
  translated = errors.translate(_lookup_error(lookup), argv)
  assert translated.where == where
  assert translated.what == f"unknown config key {bad!r}"
  assert translated.fix.startswith(f"did you mean {suggestion}?")


def _flag_values():
  values = flags.FlagValues()
  flags.DEFINE_integer("steps", 1, "steps", flag_values=values)
  flags.DEFINE_string("workdir", None, "dir", flag_values=values)
  flags.mark_flag_as_required("workdir", flag_values=values)
  return values


@pytest.mark.parametrize("argv, line", [
    (["prog", "--steps=three", "--workdir=w"],
     "error: bad value 'three': invalid literal for int() with base 10: 'three' (--steps): "
     "pass a value of the key's type (see vivit_jax/train/experiment.py)"),
    (["prog", "--stepz=3", "--workdir=w"],
     "error: unknown flag --stepz (command line): see --helpshort for the flags"),
    (["prog", "--steps=3"],
     "error: missing required flag --workdir (--workdir): pass --workdir=..."),
])
def test_absl_flag_errors_become_one_line(argv, line):
  with pytest.raises(flags.Error) as info:
    _flag_values()(argv)
  assert errors.translate(info.value, argv).line == line


def test_a_config_variant_that_get_config_refuses_is_one_line_without_the_traceback():
  from ml_collections import config_flags  # pylint: disable=import-outside-toplevel
  values = flags.FlagValues()
  config_flags.DEFINE_config_file("config", flag_values=values)
  argv = ["prog", f"--config={fx.REPO}/configs/demo_pretrain.py:nope"]
  with pytest.raises(flags.Error) as info:
    values(argv)
  translated = errors.translate(info.value, argv)
  assert translated.line == (
      f"error: {fx.REPO}/configs/demo_pretrain.py:nope does not load: ValueError: "
      "configs/demo_pretrain.py has variants ['forecast'], got 'nope' (--config): "
      "pass a variant the file lists, or fix its get_config()")


def test_missing_file_names_the_path(tmp_path):
  missing = str(tmp_path / "nope.txt")
  with pytest.raises(FileNotFoundError) as info:
    open(missing)  # pylint: disable=consider-using-with
  translated = errors.translate(info.value)
  assert translated.where == missing and translated.what == "No such file or directory"


def test_param_mismatch_names_the_checkpoint_flag():
  error = ParamMismatchError("head/kernel: model (32, 4), checkpoint (48, 4)")
  translated = errors.translate(error, ["prog", "--checkpoint=/ckpt/m"])
  assert translated.where == "--checkpoint=/ckpt/m"
  assert translated.what.startswith("checkpoint of another model: head/kernel")


@pytest.mark.parametrize("error", [RuntimeError("bug"), ValueError("bug"), KeyError("k")])
def test_unexpected_exceptions_are_not_user_errors(error):
  assert errors.translate(error) is None


def test_command_returns_2_with_one_line_and_reraises_the_rest(capsys, monkeypatch):
  monkeypatch.delenv(errors.TRACEBACK_ENV, raising=False)

  @errors.command
  def main(argv=None):
    if argv == ["bad"]:
      raise UserError("x=1 is wrong", "--x", "pass --x=2")
    if argv == ["bug"]:
      raise RuntimeError("a bug keeps its traceback")
    return 0

  assert main([]) == 0
  assert main(["bad"]) == 2
  assert capsys.readouterr().err == "error: x=1 is wrong (--x): pass --x=2\n"
  with pytest.raises(RuntimeError, match="a bug"):
    main(["bug"])
  monkeypatch.setenv(errors.TRACEBACK_ENV, "1")
  assert main(["bad"]) == 2
  err = capsys.readouterr().err
  assert err.startswith("Traceback (most recent call last)")
  assert err.splitlines()[-1] == "error: x=1 is wrong (--x): pass --x=2"


@pytest.mark.parametrize("env, argv, wanted", [
    ("", ["prog"], False), ("1", ["prog"], True), ("0", ["prog"], False),
    ("", ["prog", "--verbosity=1"], True), ("", ["prog", "--verbosity=0"], False),
    ("", ["prog", "-v", "2"], True), ("", ["prog", "--verbosity=-1"], False),
])
def test_traceback_wanted_by_env_var_or_verbosity(monkeypatch, env, argv, wanted):
  monkeypatch.setenv(errors.TRACEBACK_ENV, env)
  assert errors.traceback_wanted(argv) is wanted


def test_module_imports_without_tensorflow_or_jax():
  import subprocess  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel
  code = ("import sys, vivit_jax.common.errors; "
          "assert not {'tensorflow', 'jax'} & set(sys.modules), sorted(sys.modules)")
  subprocess.run([sys.executable, "-c", code], check=True, cwd=fx.REPO,
                 env=dict(os.environ))


@pytest.mark.parametrize("message, where", [
    ("--checkpoint=/x is neither a model checkpoint nor a training workdir", "--checkpoint"),
    ("data.eval_files: '/x-*' matches no files", "--config.data.eval_files"),
])
def test_missing_file_without_a_filename_names_the_flag_or_key_in_its_message(message, where):
  translated = errors.translate(FileNotFoundError(message))
  assert translated.where == where and translated.what == message


def _console_script_functions():
  import ast  # pylint: disable=import-outside-toplevel
  from support import REPO  # pylint: disable=import-outside-toplevel
  with open(os.path.join(REPO, "setup.py")) as f:
    setup = ast.parse(f.read())
  entries = next(ast.literal_eval(node.value) for node in setup.body
                 if isinstance(node, ast.Assign) and node.targets[0].id == "CONSOLE_SCRIPTS")
  for entry in entries:
    module, function = entry.split("=")[1].strip().split(":")
    path = os.path.join(REPO, *module.split(".")) + ".py"
    with open(path) as f:
      tree = ast.parse(f.read())
    yield entry, next(node for node in tree.body
                      if isinstance(node, ast.FunctionDef) and node.name == function)


@pytest.mark.parametrize("entry, function", list(_console_script_functions()),
                         ids=lambda x: x.split("=")[0].strip() if isinstance(x, str) else "")
def test_every_console_script_goes_through_the_one_line_wrapper(entry, function):
  import ast  # pylint: disable=import-outside-toplevel
  decorators = {ast.unparse(d) for d in function.decorator_list}
  calls = {ast.unparse(n.func) for n in ast.walk(function) if isinstance(n, ast.Call)}
  assert "errors.command" in decorators or "errors.run_absl" in calls, entry
