"""From the trained models to the study's answers: tables, verdicts, figures and the numbers the docs quote.

- ``tables``: the analysis tables across the training grid (``scripts/analysis.py``);
- ``families``: which models measure which finding;
- ``statistics``: intervals over seeds and test structures, and the verdict rule;
- ``findings``, ``hierarchy_findings``: the verdict table (finding 2 in the latter); ``gains``: ε gains per l_max;
- ``findings_report``: the findings as Markdown and HTML;
- ``figures``, ``hierarchy_figures``, ``density_slice``: the figures;
- ``draws``: verdicts on more than one draw of the structures; ``docs_numbers``: the numbers the docs quote.
"""
