"""One run, from a composed config to metrics.json.

- build.py: ``build(cfg)``, the datamodule and LightningModule of a run; the config's callbacks and loggers;
- methods.py: ``train(cfg)``: the method's own runner (``method.runner``: PET) or single.py's run;
  the plug-in hooks a method may name in its config;
- single.py: the default run: fit, test with the best dev checkpoint, write metrics.json;
- fit.py: fitting and keeping the best dev step (shared with PET's models);
- reload.py: a finished run rebuilt from its folder (evaluate, exits);
- results.py: the run folder's file names and metrics.json's identity and parameter counts;
- metrics.py: the task metrics (torchmetrics); resources.py: step time and peak memory;
- progress.py: progress bars, log lines and multirun job lines;
- distributed.py: data-parallel runs (trainer=ddp); workers.py: one job per process;
- hardware.py: bf16 or float32, by what the device computes natively;
- loggers.py: one W&B run per job;
- checks.py: the settings and the data, checked before any weights load.
"""
