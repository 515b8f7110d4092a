"""PET and iPET (Schick and Schütze, EACL 2021): ``method=pet`` (conf/method/pet.yaml).

- patterns.py: the task's ``pet_templates`` and each pattern's run config;
- model_run.py: one model, fitted as a single run is (run/fit.py), and its label logits on any examples;
- ensemble.py: the patterns' ensemble and PET's soft labels; scoring;
- ipet.py: iPET's labelled training sets, generation by generation;
- unlabeled.py: the unlabeled examples (the original pool less the K-shot examples, or a file);
- kshot.py, training.py: the K-shot examples PET predicts; training a pattern's model or the distilled one;
- run.py: the whole job (conf/method/pet.yaml's ``runner``, see run/methods.py); report.py: its metrics.json;
- table_rows.py: a PET run's rows in ``python -m fewtune.table`` (ensemble, distilled: ``table_rows``).
"""
