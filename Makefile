# The two commands a reader needs: `make reproduce` and `make test` (each runs `setup` itself).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export PYTHONHASHSEED := 0

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# runs at once; empty: one per usable core, one thread each (companion.executors.default_workers)
WORKERS ?=

PROFILE ?= quick

.PHONY: setup lock test test-fast test-deps lint bench gpu-check clean data-smoke reproduce throughput

# The environment is requirements.lock: every package, extras included, at one version with its
# hashes (Linux x86-64, Python 3.11). `make lock` refreshes it from pyproject.toml. torch's CPU
# build is on PyTorch's CPU index, not on PyPI: it is fetched from there into $(WHEELS) unless
# pip already finds it (a wheel folder or mirror in pip's own configuration).
LOCK := requirements.lock
EXTRAS := book pretrained test lock
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_PIN := $(shell sed -n 's/^ *"\(torch==[^"]*\)",$$/\1+cpu/p' pyproject.toml)
WHEELS := $(VENV)/wheels
define fetch_torch
	$(BIN)/python -m pip download -q --no-deps --no-index -d $(WHEELS) "$(TORCH_PIN)" 2>/dev/null \
		|| $(BIN)/python -m pip download -q --no-deps --index-url $(TORCH_INDEX) -d $(WHEELS) "$(TORCH_PIN)"
endef

setup: $(STAMP)

$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(fetch_torch)
	$(BIN)/python -m pip install -q --require-hashes --find-links $(WHEELS) -r $(LOCK)
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 > /dev/null
	touch $(STAMP)

# pip-compile from the `lock` extra; the environment need not match the lock to refresh it
PIP_TOOLS := $(shell sed -n 's/^lock = \["\(.*\)"\]$$/\1/p' pyproject.toml)
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(BIN)/pip-compile || $(BIN)/python -m pip install -q "$(PIP_TOOLS)"
	$(fetch_torch)
	$(BIN)/pip-compile -q --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
		--no-emit-find-links --find-links $(WHEELS) $(addprefix --extra ,$(EXTRAS)) \
		--output-file $(LOCK) pyproject.toml

lint: setup
	$(BIN)/ruff check companion tests
	$(BIN)/ruff format --check companion tests

data-smoke: setup
	$(BIN)/companion data prepare --profile smoke

# The full suite; test-fast leaves out the tests marked slow (end-to-end runs, books, the Slurm
# cluster, the browser), for the inner loop (under two minutes on 2 cores).
test: lint data-smoke test-deps
	$(BIN)/pytest -q -n $(or $(WORKERS),2) --dist loadfile

test-fast: lint data-smoke
	$(BIN)/pytest -q -n $(or $(WORKERS),2) --dist loadfile -m "not slow"

# The system packages some tests drive, from Debian with apt-get (root) when one is missing:
# headless Chromium reads the built book's pages, a one-node Slurm cluster with its accounting
# (munge, MariaDB) runs the Slurm executor. Nothing happens when all are installed.
TEST_DEBS := chromium
TEST_DEBS_BARE := slurmctld slurmd slurm-client munge slurmdbd mariadb-server
APT := DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -q
test-deps:
	@missing() { for p in "$$@"; do dpkg -s "$$p" > /dev/null 2>&1 || echo "$$p"; done; }; \
	debs=$$(missing $(TEST_DEBS)); bare=$$(missing $(TEST_DEBS_BARE)); \
	if [ -n "$$debs$$bare" ]; then \
		echo "test-deps: installing $$debs $$bare (apt-get)"; \
		$(APT) update > /dev/null; \
		if [ -n "$$debs" ]; then $(APT) install -y $$debs > /dev/null; fi; \
		if [ -n "$$bare" ]; then $(APT) install -y --no-install-recommends $$bare > /dev/null; fi; \
	fi

# Every run of the book at $(PROFILE), the section notebooks, the book (book/_build/html).
# EXECUTOR=slurm trains the runs as one Slurm job array; SLURM holds its options, e.g.
# SLURM="--partition gpu --gpus-per-run 1 --cpus-per-run 8 --time 1440 --sbatch account=lab"
EXECUTOR ?= local
SLURM ?=
reproduce: setup
	$(BIN)/companion reproduce --prepare --profile $(PROFILE) --executor $(EXECUTOR) \
		$(if $(and $(filter local,$(EXECUTOR)),$(WORKERS)),--workers $(WORKERS)) $(SLURM)

# Step times, GFLOP/s and share of the matmul peak of the main experiments at $(PROFILE) on
# this machine, and the grid's estimate; THREADS=1 times them as `make reproduce` runs them.
# BASELINE=<git revision> times that revision's package beside this one, run by run.
THREADS ?=
BASELINE ?=
throughput: setup
	$(BIN)/companion throughput --profile $(PROFILE) $(if $(THREADS),--threads $(THREADS)) \
		$(if $(BASELINE),--baseline $(BASELINE))

bench: setup
	$(BIN)/companion bench

# The CUDA path on this machine's GPU, checked and timed in one table (under 5 minutes on one
# H200); without a GPU it says so and exits 0
gpu-check: setup
	$(BIN)/companion gpu-check

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info bench/results

# The book. `make book BOOK_REPOSITORY_URL=https://github.com/<owner>/<repo>` sets the
# address the Binder launch buttons use; empty means the git remote `origin`, or no buttons.
.PHONY: mathjax book
BOOK_REPOSITORY_URL ?=

mathjax: setup
	$(BIN)/companion book mathjax book/_mathjax

book: setup mathjax
	$(if $(BOOK_REPOSITORY_URL),BOOK_REPOSITORY_URL=$(BOOK_REPOSITORY_URL)) $(BIN)/companion book build book
