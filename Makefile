# e3hier: `make reproduce` runs the default pipeline, `make test` the test suite.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
CORES ?= all
# e3hier.workflow.resume: a killed run continues (stale lock released, incomplete outputs redone)
SNAKEMAKE := $(BIN)/python -m e3hier.workflow.resume --cores $(CORES)

.PHONY: venv envs reproduce study hierarchy paper-pilot report test test-fast lint bench gpu-check plan clean

venv: $(VENV)/.installed

# torch first: pip takes this machine's local CPU wheel for torch==2.13.0.
$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==26.3
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# The rules' conda environments (envs/*.yaml): the full closure of each env's packages at the versions of
# requirements.lock, read from the venv's metadata (e3hier/workflow/envs.py; tests/test_envs.py checks they are current).
envs: venv
	$(BIN)/python -m e3hier.workflow.envs

# Each run records itself in results/run.json when it starts (e3hier.run_record): reproduce and study
# share results/, and the docs' snapshot takes only a finished study's tables.
RUN_RECORD := $(BIN)/python -m e3hier.run_record
reproduce: venv
	$(RUN_RECORD) start results reproduce config.yaml
	$(SNAKEMAKE)
	$(SNAKEMAKE) --report results/report.html
	$(RUN_RECORD) finish results

# The study tier: 5 seeds, controls, the verdict table, then the hierarchy experiment (109.5 min on 2 cores,
# docs/study.md); shares results/ with reproduce.
# Its second draw of the structures runs in its own working directory (results/draw_1/); e3hier.analysis.draws then
# shows every verdict on both draws (results/tables/findings_by_draw.parquet). Then the hierarchy experiment.
STUDY_CONFIG := config.yaml config.study.yaml
STUDY_DRAW1 := results/draw_1

# The hierarchy experiment (finding 2, config.study-hierarchy.yaml), on each draw's DFT: 16 seeds of the study model
# and the equal-channel control at the largest l_max, on draw 0 and draw 1 with the default loss and on draw 0 with
# the study's weighting (population_rms), each in its own folder under results/hierarchy/; e3hier.analysis.draws
# then stacks their verdict tables (results/tables/hierarchy_by_run.parquet) and e3hier.analysis.convergence says
# whether their models finished learning (results/tables/hierarchy_convergence.parquet). ~15 min a run.
HIERARCHY := results/hierarchy
HIERARCHY_RUNS := draw_0 draw_1 draw_0-population_rms
HIERARCHY_NAMES := "draw 0" "draw 1" "draw 0, population_rms"
# $(1): the run's folder, $(2): the draw's results/ whose structures and DFT it copies, $(3): config files after the
# study tier's
define hierarchy_run
	mkdir -p $(1)/results && cp -a $(addprefix $(2)/,structures dft reference) $(1)/results/
	$(SNAKEMAKE) --snakefile $(CURDIR)/Snakefile --directory $(1) \
		--configfile $(addprefix $(CURDIR)/,$(STUDY_CONFIG) config.study-hierarchy.yaml $(3))
endef
define hierarchy_experiment
	$(call hierarchy_run,$(HIERARCHY)/draw_0,results,)
	$(call hierarchy_run,$(HIERARCHY)/draw_1,$(STUDY_DRAW1)/results,config.study-draw1.yaml)
	$(call hierarchy_run,$(HIERARCHY)/draw_0-population_rms,results,config.study-hierarchy-population_rms.yaml)
	$(BIN)/python -m e3hier.analysis.draws results/tables/hierarchy_by_run.parquet \
		$(addsuffix /results/tables,$(addprefix $(HIERARCHY)/,$(HIERARCHY_RUNS))) \
		--names $(HIERARCHY_NAMES)
	$(BIN)/python -m e3hier.analysis.convergence results/tables/hierarchy_convergence.parquet \
		$(addsuffix /results,$(addprefix $(HIERARCHY)/,$(HIERARCHY_RUNS))) --names $(HIERARCHY_NAMES)
endef

study: venv
	$(RUN_RECORD) start results study $(STUDY_CONFIG) config.study-draw1.yaml
	$(SNAKEMAKE) --configfile $(STUDY_CONFIG)
	mkdir -p $(STUDY_DRAW1)
	$(SNAKEMAKE) --snakefile $(CURDIR)/Snakefile --directory $(STUDY_DRAW1) \
		--configfile $(addprefix $(CURDIR)/,$(STUDY_CONFIG) config.study-draw1.yaml)
	$(BIN)/python -m e3hier.analysis.draws results/tables/findings_by_draw.parquet results/tables $(STUDY_DRAW1)/results/tables
	$(hierarchy_experiment)
	$(SNAKEMAKE) --configfile $(STUDY_CONFIG) --report results/report.html
	$(RUN_RECORD) finish results
	# the numbers that the README and docs quote: snapshot (docs/results/, committed), then the blocks
	$(BIN)/python -m e3hier.analysis.docs_numbers snapshot results $(STUDY_DRAW1)/results --run study
	$(BIN)/python -m e3hier.analysis.docs_numbers write

# The hierarchy experiment alone, after a finished `make study` (e.g. after editing config.study-hierarchy.yaml).
hierarchy: venv
	$(hierarchy_experiment)

# The paper pilot (≤ 30 min on 2 cores): config.paper.yaml's recipe and every rule of it on a slice, on the CPU,
# in its own working directory (results/paper-pilot/); docs/reproducing-the-paper.md
PILOT_CONFIG := config.yaml config.paper.yaml config.paper-pilot.yaml
paper-pilot: venv
	mkdir -p results/paper-pilot
	$(SNAKEMAKE) --snakefile $(CURDIR)/Snakefile --directory results/paper-pilot \
		--configfile $(addprefix $(CURDIR)/,$(PILOT_CONFIG))
	$(SNAKEMAKE) --snakefile $(CURDIR)/Snakefile --directory results/paper-pilot \
		--configfile $(addprefix $(CURDIR)/,$(PILOT_CONFIG)) --report results/report.html

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
