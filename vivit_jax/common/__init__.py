"""The ground floor: what every other room may use; imports nothing of the package.

  constants.py  ImageNet mean / std (the input normalisation).
  errors.py     `UserError` (`error: <what> (<where>): <fix>`, exit 2), the
                translation of library exceptions of a user mistake, and the
                command wrappers (`command`, `run_absl`).
  params.py     parameter trees: flatten / unflatten, `ParamMismatchError`
                and the comparison that lists every difference,
                `abstract_like`, `json_default`.
  console.py    what process 0 prints: `is_writer`, `console`, `warn`.
  tf_logs.py    TensorFlow's C++ start-up lines kept off the console
                (installed by `import vivit_jax`; imports no TensorFlow).

Importing this package imports nothing (each module names its own
dependencies: `errors` and `constants` need none, `params` and `console` jax).
"""
