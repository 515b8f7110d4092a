"""What a run prints: fewtune's own lines on the console, libraries' chatter in the run's log file.

Kept free of Lightning imports: Hydra loads this module while it sets up logging, and Lightning,
imported before that, would add a console handler of its own.

Hydra's job logging (conf/hydra/job_logging/fewtune.yaml) uses the filter and formatter below;
``quiet_libraries`` routes Python warnings into logging (so the filter can send them to the file)
and turns off the libraries' tqdm bars where nobody watches them redraw.
"""

from __future__ import annotations

import logging
import re
import sys

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


# Warnings these send are about loading (a new head's weights "MISSING", deprecations): the
# log file keeps them, the console shows only their errors.
_FILE_ONLY_WARNINGS = ("py.warnings", "transformers")


class OwnInfoOnly(logging.Filter):
    """Console records: fewtune's at any level, other libraries' warnings and errors; not the
    libraries' info lines (device reports, tips), nor Python's and transformers' warnings."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _under(record.name, "fewtune"):
            return True
        if any(_under(record.name, name) for name in _FILE_ONLY_WARNINGS):
            return record.levelno >= logging.ERROR
        return record.levelno >= logging.WARNING


def _under(name: str, parent: str) -> bool:
    return name == parent or name.startswith(parent + ".")


class PlainFormatter(logging.Formatter):
    """The usual format without terminal colour codes (transformers' load report has them)."""

    def format(self, record: logging.LogRecord) -> str:
        return _ANSI.sub("", super().format(record))


def quiet_libraries() -> None:
    """Python's and transformers' messages through logging (so the filter above sorts them), W&B's
    banner and run summary off (fewtune logs where an offline run is), and no library progress
    bars outside a terminal."""
    import os

    from transformers.utils import logging as hf_logging

    logging.captureWarnings(True)
    hf_logging.disable_default_handler()  # transformers writes to stderr itself otherwise
    hf_logging.enable_propagation()
    os.environ.setdefault("WANDB_SILENT", "true")
    if not is_terminal():
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        hf_logging.disable_progress_bar()


def is_terminal(stream=None) -> bool:
    stream = stream or sys.stdout
    return bool(getattr(stream, "isatty", None) and stream.isatty())
