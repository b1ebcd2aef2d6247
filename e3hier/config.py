"""A run's config as the workflow sees it: the config files merged in order, validated, defaults filled in."""

from __future__ import annotations

from pathlib import Path

import yaml

#: The config schema (``rules/common.smk`` validates against it too).
SCHEMA = Path(__file__).resolve().parent / "schemas" / "config.schema.yaml"


def load_config(configfiles) -> dict:
    """The config the workflow sees.

    Parameters
    ----------
    configfiles : list of path-like
        Config files in merge order (later files override earlier ones, as ``--configfile a b``).

    Returns
    -------
    dict
        The files merged with Snakemake's ``update_config``, validated against the config schema with its
        defaults filled in.
    """
    from snakemake.utils import update_config, validate

    config: dict = {}
    for path in configfiles:
        update_config(config, yaml.safe_load(Path(path).read_text()) or {})
    validate(config, str(SCHEMA))
    return config
