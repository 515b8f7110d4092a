"""Where a job may run: in the main thread of a process of its own (the default launcher, the
local joblib workers, SLURM jobs), never in a thread beside other jobs.

Two things are per process: the global random state that ``seed_everything`` sets, and the
backbone cache of models/backbones.py (``_reusable``), which hands the same model object to the
next job of the process. Jobs in threads would share and change both at once.
"""

from __future__ import annotations

import threading

from fewtune.errors import FewtuneError


def require_own_process() -> None:
    if threading.current_thread() is not threading.main_thread():
        raise FewtuneError(
            "a job is running in a thread beside other jobs, which would share the random seed and the "
            "cached backbone; run each job in a process of its own (hydra/launcher=local does)"
        )
