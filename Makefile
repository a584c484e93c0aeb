# vlogger — set-up and the two commands on the README's first screen.
#   make demo   set-up + render manifests/demo.yaml on the CPU with the committed demo weights
#   make test   set-up + the test suite
# Set-up is idempotent: system packages are installed only when missing, the venv only when
# setup.cfg changed. Persistent caches (anny body model ~1.2 GB, numba, matplotlib) live in
# .cache/ inside the checkout (git-ignored), never in /tmp.
# On a GPU box (nvidia-smi works) set-up installs the CUDA build of the pinned torch that the driver runs,
# from PyTorch's index, and checks torch.cuda.is_available() at the end; TORCH_INDEX=URL picks the index
# (e.g. https://download.pytorch.org/whl/cu126). CPU boxes install the pin as it is. Logic and tests:
# vlogger_cli/install_plan.py, tests/test_install_plan.py.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.vlogger-installed
APT_PACKAGES := espeak-ng libespeak-ng1 libosmesa6 libegl1 libgl1
TORCH_PIN := torch==2.13.0

export VLOGGER_CACHE_DIR ?= $(CURDIR)/.cache
export ANNY_CACHE_DIR ?= $(VLOGGER_CACHE_DIR)/anny
export NUMBA_CACHE_DIR ?= $(VLOGGER_CACHE_DIR)/numba
export MPLCONFIGDIR ?= $(VLOGGER_CACHE_DIR)/matplotlib

TORCH_ARGS := $(VENV)/.torch-args

.PHONY: demo test setup system-deps cuda-check doctor clean-venv FORCE

# The edit step edits the video the render step just made (issue 7: `vlogger edit`): the astronaut closes
# her eyes for 3 s while her lips stay as rendered; stage-2 inpainting on the edited frames only.
demo: setup
	$(BIN)/vlogger render manifests/demo.yaml --output out/demo
	$(BIN)/vlogger edit out/demo/welcome/welcome.mp4 -o out/demo/welcome-eyes-closed.mp4 \
	  --keep-lips --eyes closed --frames 25:100 --steps 10 --seed 7
	@echo "Outputs: $(CURDIR)/out/demo/<job id>/ (summary: out/demo/summary.json), out/demo/welcome-eyes-closed.mp4"

test: setup
	$(BIN)/python -m pytest -q

setup: system-deps $(STAMP) cuda-check

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing system packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

# Order matters (see docs/INSTALL.md): torch first and pinned (else pip pulls a multi-GB
# CUDA build); pyrender, mediapipe and cpbd (eval's sharpness) without their broken pins; then the project with the rest.
# The pip arguments for torch (which build, from which index), rewritten only when they change (a new
# TORCH_INDEX, a GPU appeared) so that the install below re-runs then and only then.
$(TORCH_ARGS): FORCE
	@mkdir -p $(VENV); args="$$($(PYTHON) -m vlogger_cli.install_plan torch-args $(TORCH_PIN))" || exit 1; \
	if [ ! -f $@ ] || [ "$$(cat $@)" != "$$args" ]; then echo "$$args" > $@; fi

$(STAMP): setup.cfg pyproject.toml Makefile $(TORCH_ARGS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/pip install -q $$(cat $(TORCH_ARGS))
	$(BIN)/pip install -q --no-deps pyrender==0.1.45 mediapipe==0.10.14 cpbd==1.0.7
	$(BIN)/pip install -q -e '.[test,ray]'
	touch $(STAMP)

# GPU boxes only (silent elsewhere): can torch use the GPU? If not, one line says what to do.
cuda-check: $(STAMP)
	@$(BIN)/python -m vlogger_cli.install_plan check

doctor: setup
	$(BIN)/vlogger doctor

clean-venv:
	rm -rf $(VENV)
