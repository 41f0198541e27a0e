"""The one base class for errors a user can cause, and fix.

Every such error (a bad config key, a missing data file, a ladder that cannot
run, a checkpoint that does not fit, ...) derives from :class:`FspladderError`
and carries a message that names the problem and what would fix it. The CLI
prints exactly these as one line, ``fspladder CMD: error: ...``, with exit
status 2; anything else is a bug in fspladder and shows its traceback with a
request to report it.
"""

from __future__ import annotations

__all__ = ["FspladderError", "ProblemsError"]


class FspladderError(Exception):
    """An error the user caused and can fix; its message says how."""


class ProblemsError(FspladderError, ValueError):
    """Several problems found at once; ``problems`` lists them all, one message each."""

    heading = "problems"

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        if len(self.problems) == 1:  # one problem, one line (the CLI's `error: ...` stays a single line)
            super().__init__(f"{self.heading}: {self.problems[0]}")
        else:
            super().__init__(f"{self.heading}:\n" + "\n".join(f"  - {p}" for p in self.problems))
