"""A cost plan of a workflow run before it runs: core-hours, peak memory per job and GPU-hours per rule.

``make plan CONFIG="config.yaml config.paper.yaml"`` (= ``python -m e3hier.plan --configfile ...``).

How it works (docs/plan.md has the justification and the validation):

1. **Jobs** come from the real Snakemake DAG: a ``--dry-run --forceall`` of the workflow with the given
   config files in a scratch working directory, parsed job by job (rule, wildcards, outputs, threads,
   resources). A ``train_ensemble_*`` job (``train.ensemble_size`` K > 1) counts as a train job of the K
   models whose folders it writes.
2. **Size features** of every job are computed from the merged config (with the schema's defaults) and
   the job's wildcards: atoms, SCF basis functions, DFT and ε grid points, fit functions, training
   structures, epochs, batch size, parameter count, number of models ... (``job_features``).
3. **Scaling laws** (``TIME_LAWS``, ``MEMORY_LAWS``) predict each job's seconds (and peak RSS) from its
   features as ``base + scale × Π feature**exponent``. Their coefficients, and the exponents where the
   calibration holds enough distinct sizes, are fitted by least squares in log space on **calibration
   tables** (``benchmarks/calibration/*.tsv``: the features and the measured seconds / max RSS of every
   job of earlier runs, written by ``--summarise-run``); elsewhere the physical exponent is used.
4. **Totals**: core-hours = Σ seconds × threads / 3600 per rule; peak memory = the largest predicted RSS
   of a rule's jobs (the dft rule: its own ``mem_mb`` as the DAG requests it, i.e. the workflow's
   estimate of the DFT's peak, not a second model of it); GPU-hours = Σ wall hours × GPUs of the jobs
   that ask for a GPU.

Everything here is plain functions over pandas tables; only ``dag_jobs`` runs Snakemake. One module per step:
``dag`` (1), ``features`` (2), ``laws`` and ``calibration`` (3), ``predict`` (4), ``runs`` (calibration
tables from finished runs), ``validation`` (predicted against measured), ``cli`` (the command line).
Their public names are importable from here too (``e3hier.plan.job_counts``).
"""

from e3hier.plan.calibration import (  # noqa: F401
    CALIBRATION_DIR,
    DEFAULT_CALIBRATION,
    VALIDATION_CALIBRATION,
    VALIDATION_RUN,
    Calibration,
    calibrate,
    default_calibration_paths,
    load_calibration,
    read_calibration,
)
from e3hier.plan.cli import (  # noqa: F401
    format_plan,
    main,
)
from e3hier.plan.dag import (  # noqa: F401
    GROUP_INDENT,
    JOB_HEADER,
    MODEL_PATH,
    PLAN_CORES,
    ROOT,
    SCHEMA,
    SNAKEFILE,
    dag_jobs,
    dry_run_text,
    job_counts,
    load_config,
    parse_dry_run,
    rule_family,
    snakemake_command,
)
from e3hier.plan.features import (  # noqa: F401
    BATCH1_FIXED_FRACTION,
    BATCH_REFERENCE_ATOMS,
    job_features,
    train_features,
)
from e3hier.plan.laws import (  # noqa: F401
    CONSTANT_MEMORY,
    MEMORY_LAWS,
    RSS_FLOOR_MB,
    START_BASE_FRACTIONS,
    TIME_LAWS,
    FittedLaw,
    Law,
    fit_law,
    fit_memory_law,
)
from e3hier.plan.predict import (  # noqa: F401
    COMPILE_SECONDS,
    DEFAULT_PARALLEL_FRACTION,
    ENSEMBLE_COST_FACTOR_GPU,
    ENSEMBLE_PART_COST_CPU,
    GPU_SPEEDUP_OVER_CORE,
    NO_COST_RULES,
    PARALLEL_FRACTION,
    ensemble_cost,
    plan,
    predict_jobs,
    rule_table,
)
from e3hier.plan.runs import (  # noqa: F401
    summarise_run,
)
from e3hier.plan.structure_features import atom_grid_points, basis_functions, structure_table  # noqa: F401
from e3hier.plan.validation import (  # noqa: F401
    compare,
    measured_rule_table,
    validate_on,
)
