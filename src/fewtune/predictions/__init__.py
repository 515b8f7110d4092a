"""Per-example predictions: what every run stores beside its metrics, and what is built on them.

- store.py: the Parquet files (``<run>/predictions/dev.parquet``, ``test.parquet``) and ``Predictions``;
- recorder.py: the Lightning callback that collects them in the dev and test phases;
- run_files.py: a run writes them (and logs them to W&B as tables);
- rescore.py: the task's metrics recomputed from a file, exactly as the run computed them;
- inputs.py, apply.py: a finished run applied to new texts (``python -m fewtune.predict``);
- significance.py, confusion.py: paired tests between the table's rows and confusion matrices;
- ensemble.py: several runs' stored probabilities averaged into a new run (``python -m fewtune.ensemble``).

docs/predictions.md describes the files and the commands.
"""
