# Set-up, tests, demo and benchmarks. Everything lives in .venv; torch is pinned (PyPI's Linux wheel bundles CUDA
# libraries, ~4.7 GB in the venv, and runs on the CPU; pass TORCH_PIP_ARGS for a CPU-only wheel index).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
TORCH_PIP_ARGS ?=  # e.g. --index-url <your CPU wheel index> where PyPI's default torch is a CUDA build

.PHONY: setup test demo lint bench-quality bench-generation bench-evaluate qa-venv horovod clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

setup: $(BIN)/python
	# torch first, pinned: letting pip pick it for the dependencies could pull another version
	$(BIN)/pip install --quiet $(TORCH_PIP_ARGS) "torch==$(TORCH_VERSION)"
	$(BIN)/pip install --quiet -e ".[test]"

# the Horovod backend's tests run for real: Horovod is built once per venv (skipped when it imports)
test: setup horovod
	$(BIN)/ruff check spark_synth tests jobs benchmarks notebooks
	$(BIN)/python -m pytest -q tests

demo: setup
	$(BIN)/spark-synth demo

lint:
	$(BIN)/ruff check spark_synth tests jobs benchmarks notebooks

# The referee (mostlyai-qa) lives in its own venv: never a runtime dependency of spark-synth.
QA_VENV ?= .venv-qa
qa-venv:
	test -x $(QA_VENV)/bin/python || $(PYTHON) -m venv $(QA_VENV)
	$(QA_VENV)/bin/pip install --quiet "torch==$(TORCH_VERSION)" && $(QA_VENV)/bin/pip install --quiet mostlyai-qa scikit-learn

bench-quality: setup qa-venv
	$(BIN)/python benchmarks/census_quality.py --qa-python $(QA_VENV)/bin/python

bench-generation: setup
	$(BIN)/python benchmarks/generation_speed.py

bench-evaluate: setup qa-venv
	$(BIN)/python benchmarks/evaluate_vs_mostlyai_qa.py --qa-python $(QA_VENV)/bin/python
	$(BIN)/python benchmarks/evaluate_scale.py

# Horovod (PyTorch + Gloo) for the data-parallel Horovod backend: opt-in for users (`make setup` does not
# need it), built by `make test` so that its tests run.
horovod: setup
	./tools/build-horovod.sh $(BIN)/pip

clean:
	rm -rf demo-output mlflow.db mlruns spark-warehouse .pytest_cache
