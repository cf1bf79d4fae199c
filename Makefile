# Self-bootstrapping entry points: the first `make demo` or `make test` builds .venv.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The CPU wheel these machines hold offline; an unpinned torch pulls a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
ROS_WHEELS := ros-rclpy ros-sensor-msgs ros-nav-msgs ros-std-msgs ros-geometry-msgs \
	ros-diagnostic-msgs ros-visualization-msgs ros-rmw-fastrtps-cpp

# Everything these targets start keeps DDS discovery on this machine, in a private domain.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
ROS_DOMAIN_ID ?= $(shell python3 -c 'import random; print(random.randint(10, 100))')
export ROS_DOMAIN_ID

.PHONY: venv demo test bench clean

venv: $(STAMP)

$(STAMP): setup.py setup.cfg
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet "$(TORCH_SPEC)"
	$(PYTHON) -m pip install --quiet $(ROS_WHEELS)
	$(PYTHON) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/denseaspp demo --output out/demo

test: $(STAMP)
	$(PYTHON) -m pytest -q

bench: $(STAMP)
	$(VENV)/bin/denseaspp bench --model MobileNetDenseASPP --size 256x512 --batch 1
	$(VENV)/bin/denseaspp bench --model DenseASPP161 --size 256x512 --batch 1

clean:
	rm -rf $(VENV) out build *.egg-info
