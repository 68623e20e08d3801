# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv when missing and
# install torch (CPU wheel by default; override with TORCH_SPEC=...) before the packages.
# With ROS 2 sourced: `make ros-test` builds the package with colcon in a scratch workspace and runs its
# launch tests on real nodes (`make ros-venv` first makes the venv over ROS's Python that runs them).
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
STAMP := $(VENV)/.installed-$(shell printf '%s' '$(TORCH_SPEC)' | cksum | cut -d' ' -f1)

ROS_PYTHON ?= /usr/bin/python3
ROS_VENV ?= .venv-ros
ROS_WS ?= build/ros_ws
ROS_STAMP := $(ROS_VENV)/.installed-$(shell printf '%s' '$(TORCH_SPEC)' | cksum | cut -d' ' -f1)

.PHONY: install test lint demo clean ros-venv ros-build ros-test

install: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) setup.py pyproject.toml training/pyproject.toml
	$(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q -e ".[test,accel]" -e ./training
	rm -f $(VENV)/.installed-*
	touch $@

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(PY) -m pytest -q

ros-venv: $(ROS_STAMP)

$(ROS_STAMP): requirements-ros.txt
	$(ROS_PYTHON) -m venv --system-site-packages $(ROS_VENV)
	$(ROS_VENV)/bin/pip --disable-pip-version-check install -q "$(TORCH_SPEC)" -r requirements-ros.txt
	rm -f $(ROS_VENV)/.installed-*
	touch $@

# The package as ROS users build it: colcon, in a workspace whose src/ links to this checkout.
ros-build: ros-venv
	@test -n "$$AMENT_PREFIX_PATH" || { echo "ROS 2 is not sourced: source /opt/ros/humble/setup.bash first" >&2; exit 2; }
	mkdir -p $(ROS_WS)/src && ln -sfn $(CURDIR) $(ROS_WS)/src/echogen_ros
	. $(ROS_VENV)/bin/activate && cd $(ROS_WS) && colcon build --packages-select echogen_ros --event-handlers console_cohesion+

ros-test: ros-build
	rm -rf $(ROS_WS)/build/echogen_ros/test_results
	. $(ROS_VENV)/bin/activate && cd $(ROS_WS) && . install/setup.sh && \
		colcon test --packages-select echogen_ros --event-handlers console_cohesion+ && \
		colcon test-result --test-result-base build/echogen_ros --verbose
	$(ROS_VENV)/bin/python test/ros/no_skips.py $(ROS_WS)/build/echogen_ros/test_results

demo: install
	$(VENV)/bin/echogen demo --out demo_out

clean:
	rm -rf demo_out build *.egg-info training/*.egg-info
