# The two commands of the README: `make demo` (the main job) and `make test` (the suite).
# Both create .venv and install everything on a fresh machine first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

# DDS traffic never leaves the machine: the suite runs in a private network namespace
# with only loopback up (as root `unshare -n`, otherwise a user namespace with `-rn`).
UNSHARE := $(if $(filter 0,$(shell id -u)),unshare -n,unshare -rn)
ROS_ISOLATION := ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_LOCALHOST_ONLY=1

.PHONY: install test demo lint bench clean

install: $(STAMP)

$(STAMP): setup.py setup.cfg
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade "pip>=23" "setuptools>=68" wheel
	# The torch builds the project is tested with.
	$(BIN)/python -m pip install torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install -e '.[node,train,ros,dev]'
	touch $(STAMP)

test: $(STAMP)
	$(UNSHARE) sh -c 'ip link set lo up && $(ROS_ISOLATION) $(BIN)/python -m pytest $(PYTEST_ARGS)'

demo: $(STAMP)
	$(BIN)/python training/demo.py --config config/demo.yaml

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build install log .pytest_cache .ruff_cache
