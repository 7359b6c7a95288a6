# The two commands: `make demo` and `make test`. Both create (or reuse) the
# virtual environment in .venv and install the package into it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-test
# jax2onnx installs without its dependencies (setup.py, ONNX); its pin's one home:
JAX2ONNX := $(shell sed -n 's/^JAX2ONNX = "\(.*\)"$$/\1/p' vivit_jax/common/onnx_deps.py)
PYTEST_ARGS ?=

.PHONY: test demo install clean mutation venv312

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel

$(STAMP): setup.py vivit_jax/common/onnx_deps.py | $(PY)
	$(PY) -m pip install --quiet -e ".[test]"
	$(PY) -m pip install --quiet --no-deps $(JAX2ONNX)
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile -q $(PYTEST_ARGS) tests

# Mutation testing of the result-critical modules (docs/testing.md); about an
# hour on 2 cores. MUTATION_ARGS, e.g. --modules models/masking.py --max-minutes 10
MUTATION_ARGS ?=
mutation: $(STAMP)
	$(PY) -m pip install --quiet -e ".[test,mutation]"
	$(PY) scripts/mutation.py $(MUTATION_ARGS)

# Python 3.12 with jax 0.12 beside the default environment, for the CPU
# levers benchmark (scripts/benchmark_xla_flags.py --python jax_0.12=.venv312/bin/python).
PYTHON312 ?= python3.12
venv312:
	$(PYTHON312) -m venv .venv312
	.venv312/bin/python -m pip install --quiet --upgrade pip
	.venv312/bin/python -m pip install --quiet -e . "jax>=0.12,<0.13"

demo: $(STAMP)
	$(PY) scripts/demo.py

clean:
	rm -rf $(VENV) .venv312 build *.egg-info
