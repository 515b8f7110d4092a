"""PET and iPET (Schick and Schütze, EACL 2021): ``method=pet`` (conf/method/pet.yaml).

- patterns.py: the task's ``pet_templates`` and each pattern's run config;
- fit.py: one model trained as ``train.train`` trains it, and its label logits on any examples;
- ensemble.py: the patterns' ensemble and PET's soft labels; scoring;
- ipet.py: iPET's labelled training sets, generation by generation;
- unlabeled.py: the unlabeled examples (the original pool less the K-shot examples, or a file);
- run.py: the whole job, to metrics.json (``train.train`` hands method=pet runs to it);
- table_rows.py: a PET run's rows in ``python -m fewtune.table`` (ensemble, distilled).
"""
