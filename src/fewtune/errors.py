"""One exception type for every mistake a user can make in a config or in the data.

Its message is a single line that says what was wrong and how to fix it; the entry points
print it without a traceback.
"""


class FewtuneError(Exception):
    """A user-facing error: bad config, missing data, unusable model."""
