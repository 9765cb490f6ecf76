"""The one exception type a user sees as a message rather than a traceback, and the runner that
shows it that way."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from types import FrameType


class DigitsError(Exception):
    """A problem with inputs, data or params; the message names it and says how to fix it."""


def run_main(main: Callable[[], None]) -> None:
    """Run `main`, a stage script's or the `digits` command's: a `DigitsError` prints its
    message alone instead of a traceback (exit 1), and Ctrl-C says nothing was published (exit
    130, the shell's code for SIGINT)."""
    # `kill` and CI timeouts send SIGTERM: unwind like Ctrl-C, so cleanup (stopping a tuning
    # chief and its workers, removing temporary files) runs.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        main()
    except DigitsError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted: nothing was published; rerun to resume", file=sys.stderr)
        sys.exit(130)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
