"""How the stages meet the command line: user-facing errors become one line and exit code 1."""

from __future__ import annotations

import sys
from collections.abc import Callable

from digits.errors import DigitsError


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's `main`; a `DigitsError` prints its message alone instead of a traceback."""
    try:
        main()
    except DigitsError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted: nothing was published; rerun the stage to resume", file=sys.stderr)
        sys.exit(130)
