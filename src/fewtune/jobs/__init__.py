"""A run's folder seen as a job: resumable, skippable when complete, traceable, archivable.

- resume.py: the config hash, skipping complete jobs, continuing killed ones from last.ckpt;
- random_state.py: the random state in last.ckpt, so that a resumed job computes what an
  uninterrupted one would;
- provenance.py: what metrics.json records of the code and data a run used;
- sweep.py: the jobs a Hydra multirun asks for (the table's missing jobs, "job 3/30" lines);
- archive.py: the files of runs the table reads, copied into a folder to commit (results/);
- atomic.py: write-then-rename, so that no reader sees half a file;
- stopped.py: what failed.json says about a job stopped from outside (scancel, a preemption,
  Ctrl-C) and how it continues;
- folders.py: whether a run folder can be written, and what killed writes left in it.
"""
