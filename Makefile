# e3hier: `make reproduce` runs the default pipeline, `make test` the test suite.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
CORES ?= all
# e3hier.resume: a killed run continues (stale lock released, incomplete outputs redone)
SNAKEMAKE := $(BIN)/python -m e3hier.resume --cores $(CORES)

.PHONY: venv reproduce study report test test-fast lint bench gpu-check plan clean

venv: $(VENV)/.installed

# torch first: pip takes this machine's local CPU wheel for torch==2.13.0.
$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==26.3
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

reproduce: venv
	$(SNAKEMAKE)
	$(SNAKEMAKE) --report results/report.html

# The study tier (≤ 90 min on 2 cores): 5 seeds, controls, the verdict table; shares results/ with reproduce.
study: venv
	$(SNAKEMAKE) --configfile config.yaml config.study.yaml
	$(SNAKEMAKE) --configfile config.yaml config.study.yaml --report results/report.html

test: venv
	$(BIN)/python -m pytest -q

# the tests not marked slow (pyproject.toml): < 2 min on 2 cores
test-fast: venv
	$(BIN)/python -m pytest -q -m "not slow"

# Speed benchmarks (≤ 10 min on 2 cores): results/benchmarks/summary.json, see benchmarks/README.md.
bench: venv
	$(BIN)/python benchmarks/run.py

# CUDA against the CPU (< 5 min on a GPU node): one grid point and an ensemble of 2, a few epochs each;
# exits 0 with "skipped: no CUDA device" without a GPU (docs/cluster.md).
gpu-check: venv
	$(BIN)/python benchmarks/gpu_check.py

# Cost plan of a config before running it (docs/plan.md): core-hours, peak memory, GPU-hours per rule.
#   make plan CONFIG="config.yaml config.paper.yaml"   (the config files in merge order)
CONFIG ?= config.yaml
plan: venv
	$(BIN)/python -m e3hier.plan --configfile $(CONFIG)

lint: venv
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile rules
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf results .snakemake
