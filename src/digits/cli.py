"""The command line: the `digits` tool, and error handling shared with the stage scripts."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from digits.errors import DigitsError


def run_stage(main: Callable[[], None]) -> None:
    """Run `main`; a `DigitsError` prints its message alone instead of a traceback."""
    try:
        main()
    except DigitsError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted: nothing was published; rerun to resume", file=sys.stderr)
        sys.exit(130)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="digits", description="Tools around the digit-classification DVC pipeline."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    review = commands.add_parser(
        "review",
        help="offline Markdown report comparing two revisions: params, metrics and plots",
    )
    review.add_argument("old", help="baseline revision: commit, branch, tag or experiment")
    review.add_argument("new", nargs="?", help="revision to compare (default: the workspace)")
    review.add_argument("-o", "--out", type=Path, default=Path("review"), help="output folder")
    args = parser.parse_args(argv)

    def review_command() -> None:
        from digits.review import write_review

        print(f"review: wrote {write_review(args.old, args.new, args.out)}")

    run_stage(review_command)
