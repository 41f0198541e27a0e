# Two entry points (see README): `make run` and `make test`.
# Both work on a fresh Debian machine as root: they install the Fashion-MNIST
# package and a virtual environment with the CPU build of torch when missing.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
FMNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
OUT    ?= runs/default-$(shell date +%Y%m%d-%H%M%S)
TORCH  ?= torch==2.13.0

.PHONY: run test data venv bench clean

run: data venv
	$(VENV)/bin/fspladder run --out $(OUT)

test: data venv $(VENV)/.track
	$(PY) -m pytest -q

# The trackers' tests read TensorBoard and MLflow logs back: `make test` installs the extras, `make run` never needs them.
$(VENV)/.track: $(VENV)/.installed
	$(PY) -m pip install -q -e ".[test,track]"
	touch $@

bench: data venv
	$(VENV)/bin/fspladder bench --preset quick --micro --out runs/bench-quick

data: $(FMNIST)
$(FMNIST):
	@if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; \
	else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; fi

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned: the CPU wheel here; an unpinned torch would pull a multi-GB CUDA build.
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[test]"
	touch $@

clean:
	rm -rf $(VENV) runs .pytest_cache
