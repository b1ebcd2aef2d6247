"""Snakemake glue: the verdict table as HTML and Markdown."""

from e3hier.analysis.findings_report import findings_html, findings_markdown
from e3hier.io import logged_errors, read_table, setup_logging, write_text

log = setup_logging(snakemake.log[0])

with logged_errors(log):
    table = read_table(snakemake.input[0])
    for path, text in (
        (snakemake.output.html, findings_html(table)),
        (snakemake.output.markdown, findings_markdown(table)),
    ):
        write_text(path, text)
    log.info("%d findings: %s", len(table), dict(zip(table["finding"], table["verdict"])))
