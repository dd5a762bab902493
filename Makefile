# Two commands: `make demo` and `make test`. Both create .venv when missing. `make studio` adds the studio extra
# and starts the doodle studio on http://127.0.0.1:8765.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# two test workers, one thread each (tests/conftest.py): the suite is sized for a 2-core machine
TEST_WORKERS ?= 2

.PHONY: demo test studio

$(STAMP): setup.cfg constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@# torch first, alone (the local CPU build); constraints.txt then keeps it pinned so pip never pulls CUDA.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/semstyle run configs/default.yaml

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal

$(VENV)/.studio: $(STAMP)
	$(BIN)/pip install -q -c constraints.txt -e '.[studio]'
	touch $(VENV)/.studio

studio: $(VENV)/.studio
	$(BIN)/semstyle studio
