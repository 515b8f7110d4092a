"""One exception type for every mistake a user can make in a config or in the data.

Its message is a single line that says what was wrong and how to fix it; the entry points
print it without a traceback.
"""

from collections.abc import Iterator
from contextlib import contextmanager


class FewtuneError(Exception):
    """A user-facing error: bad config, missing data, unusable model."""


@contextmanager
def saved_run_errors(overrides: list[str]) -> Iterator[None]:
    """The commands that reopen a saved run with overrides (evaluate, predict): a FewtuneError,
    or an override that leaves the run's config incomplete, exits with one line."""
    from omegaconf.errors import OmegaConfBaseException

    try:
        yield
    except FewtuneError as err:
        raise SystemExit(f"error: {err}") from None
    except OmegaConfBaseException as err:
        first = str(err).splitlines()[0]
        raise SystemExit(f"error: the run's config with {overrides}: {first}") from None
