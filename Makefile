# The README's two commands: `make demo` and `make test`. Both create .venv when needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch and torchvision are installed first, pinned to releases this build machine serves from its disk;
# override on other machines, e.g. `make test TORCH_SPEC="torch torchvision"`.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
# `make test-min` sets CONSTRAINTS=constraints-min.txt: every dependency at its declared floor.
CONSTRAINTS ?=
PIP_CONSTRAINTS := $(if $(CONSTRAINTS),-c $(CONSTRAINTS))
SMOKE_VENV ?= .venv-wheel

.PHONY: setup setup-test demo test test-min wheel-smoke bench docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC) $(PIP_CONSTRAINTS)

# The core install (what `make demo` needs) and the test extras (transformers, diffusers, torchattacks, ...).
$(VENV)/.installed: pyproject.toml Makefile $(CONSTRAINTS) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e . $(PIP_CONSTRAINTS)
	touch $@

$(VENV)/.installed-test: pyproject.toml Makefile $(CONSTRAINTS) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]" $(PIP_CONSTRAINTS)
	# torchattacks is the reference the attack tests compare against; its pin requests~=2.25 sends pip's
	# resolver into "resolution-too-deep" beside today's hub/transformers, so it goes in without its deps
	# (numpy, scipy, tqdm and requests are there already).
	$(BIN)/python -m pip install --quiet --no-deps torchattacks==3.5.1
	touch $@

$(VENV)/.installed-docs: pyproject.toml Makefile | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[docs]" $(PIP_CONSTRAINTS)
	touch $@

setup: $(VENV)/.installed
setup-test: $(VENV)/.installed-test

demo: setup
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(BIN)/clap demo

# One pytest-xdist worker per core (TEST_WORKERS=1: one process), one thread each; each test file runs on one
# worker, so a module fixture (the shrunk demo run, a rendered report) is built once.
test: setup-test
	$(BIN)/ruff check .
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python -m pytest -q -n $${TEST_WORKERS:-auto} --dist loadfile \
		--durations=15

# The test suite with every dependency at the floor pyproject.toml declares (its own venv).
test-min:
	$(MAKE) test VENV=.venv-min CONSTRAINTS=constraints-min.txt

# The wheel is the product: build it, install it (not editable, core dependencies only) into a fresh
# venv and run the commands a new user would, from outside the source tree.
wheel-smoke: setup-test
	rm -rf dist $(SMOKE_VENV)
	$(BIN)/python -m build --wheel --no-isolation --outdir dist .
	$(PYTHON) -m venv $(SMOKE_VENV)
	$(SMOKE_VENV)/bin/python -m pip install --quiet $(TORCH_SPEC)
	$(SMOKE_VENV)/bin/python -m pip install --quiet dist/*.whl
	cd /tmp && OMP_NUM_THREADS=2 bash $(CURDIR)/.ci/wheel_smoke.sh $(CURDIR)/$(SMOKE_VENV)/bin/clap

# The documentation site (docs/ + the API reference from the docstrings) into site/; --strict: a broken link or
# an API entry that names nothing fails the build.
docs: $(VENV)/.installed-docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

bench: setup-test
	$(BIN)/python -m benchmarks.run_all

clean:
	rm -rf $(VENV) .venv-min $(SMOKE_VENV) dist demo_output site
