# Self-bootstrapping entry points: the first `make demo` or `make test` builds the venv.
#
# ROS_DISTRO picks the ROS 2 Python wheels the venv gets from PyPI, each distro in its own venv:
#   kilted (default): .venv         `make test`
#   jazzy:            .venv-jazzy   `make test ROS_DISTRO=jazzy`
# Humble (Python 3.10) has no such wheels: `make compat` checks the code statically instead.
ROS_DISTRO ?= kilted
ifeq ($(ROS_DISTRO),kilted)
VENV ?= .venv
ROS_WHEEL_PREFIX := ros-
else ifeq ($(ROS_DISTRO),jazzy)
VENV ?= .venv-jazzy
ROS_WHEEL_PREFIX := ros-jazzy-
else
$(error ROS_DISTRO=$(ROS_DISTRO) (a sourced ROS setup exports it): the venvs are built for kilted or jazzy, e.g. `make test ROS_DISTRO=kilted`)
endif
export ROS_DISTRO

PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The CPU wheel these machines hold offline; an unpinned torch pulls a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
ROS_WHEELS := $(addprefix $(ROS_WHEEL_PREFIX),rclpy sensor-msgs nav-msgs std-msgs geometry-msgs \
	diagnostic-msgs visualization-msgs rmw-fastrtps-cpp)
# The oldest Python the package supports (Humble's), checked statically by `make compat`.
MIN_PYTHON := 3.10
COMPAT_PATHS := denseaspp_ros test bench launch setup.py

# Everything these targets start keeps DDS discovery on this machine, in a private domain.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
ROS_DOMAIN_ID ?= $(shell python3 -c 'import random; print(random.randint(10, 100))')
export ROS_DOMAIN_ID

.PHONY: venv demo test compat bench gpu-check gpu-train clean

venv: $(STAMP)

$(STAMP): setup.py setup.cfg Makefile
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet "$(TORCH_SPEC)"
	$(PYTHON) -m pip install --quiet $(ROS_WHEELS)
	$(PYTHON) -m pip install --quiet -e ".[test,onnx,openvino]" vermin
	touch $(STAMP)

# The fastest backend on a CPU: OpenVINO int8 (BENCHMARKS.md; built once, then cached).
demo: $(STAMP)
	$(VENV)/bin/denseaspp demo --output out/demo --backend openvino --precision int8

test: $(STAMP)
	$(PYTHON) -m pytest -q

# Fails on any construct or standard-library name newer than MIN_PYTHON.
compat: $(STAMP)
	$(VENV)/bin/vermin --target=$(MIN_PYTHON)- --violations --no-tips --eval-annotations \
		--no-parse-comments $(COMPAT_PATHS)

bench: $(STAMP)
	$(VENV)/bin/denseaspp bench --model MobileNetDenseASPP --size 256x512 --batch 1
	$(VENV)/bin/denseaspp bench --model DenseASPP161 --size 256x512 --batch 1

# The GPU figures (bench/gpu_check.py): about 8 minutes on an H100/H200; says so and exits without CUDA.
gpu-check: $(STAMP)
	$(PYTHON) bench/gpu_check.py --output out/gpu_check

# The demo weights' last training stage on a GPU within 10 minutes (bench/train_gpu.py); weights and record in out/gpu_train.
gpu-train: $(STAMP)
	$(PYTHON) bench/train_gpu.py --output out/gpu_train

clean:
	rm -rf $(sort $(VENV) .venv .venv-jazzy) out build *.egg-info
