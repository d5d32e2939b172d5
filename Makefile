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

.PHONY: setup test lint bench clean data-smoke reproduce throughput

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[book,pretrained,test]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 > /dev/null
	touch $(STAMP)

lint: setup
	$(BIN)/ruff check companion tests
	$(BIN)/ruff format --check companion tests

data-smoke: setup
	$(BIN)/companion data prepare --profile smoke

test: lint data-smoke
	$(BIN)/pytest -q -n $(or $(WORKERS),2) --dist loadfile

# Every run of the book at $(PROFILE), the section notebooks, the book (book/_build/html).
# EXECUTOR=slurm trains the runs as one Slurm job array; SLURM holds its options, e.g.
# SLURM="--partition gpu --gpus-per-run 1 --cpus-per-run 8 --time 1440 --sbatch account=lab"
EXECUTOR ?= local
SLURM ?=
reproduce: setup
	$(BIN)/companion data prepare --profile $(PROFILE)
	$(BIN)/companion reproduce --profile $(PROFILE) --executor $(EXECUTOR) \
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
