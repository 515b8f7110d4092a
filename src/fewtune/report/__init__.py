"""The table of a set of runs and everything drawn from it (``python -m fewtune.table``).

- runs.py: the runs below a folder (config, results, failed/killed/missing jobs); a method's
  ``table_rows`` hook may turn one run into several rows (PET: ensemble and distilled);
- summary.py: best-on-dev per seed, mean (std) per cell, the row and column order;
- formats.py: Markdown, LaTeX, CSV; runs_csv.py: runs.csv, which run each cell came from;
- plots.py, params.py, figures.py: bar chart, learning curve, parameters against the metric;
- costs.py: trainable parameters, storage, step time and memory per method (--costs);
- paper.py: LM-BFF's published Table 3 (--paper); wandb.py: the table in a W&B run (--wandb);
- table.py: ``make_table``, all of the above written to one folder.
"""
