"""`donebox worker`'s process: Dramatiq's command line, its records through app.logs.

Dramatiq's own logging setup (``logging.basicConfig`` with its format, in the main process and in
each worker process) is skipped; the root handler set up here is inherited by the worker
processes Dramatiq forks, so their lines are formatted and redacted like every other process's.
It writes each line to stderr's descriptor itself (``app.logs.LineWriter``), not through the pipe
to the main process that Dramatiq makes a worker process's ``sys.stderr``.
"""

from __future__ import annotations

import sys

from dramatiq.cli import main as dramatiq_main
from dramatiq.cli import make_argument_parser

from app.logs import setup_logging, write_lines_directly
from app.settings import get_settings


def main(argv: list[str]) -> int:
    """Run Dramatiq's command line with ``argv`` (``jobs.actors --processes N ...``)."""
    setup_logging(get_settings())
    write_lines_directly()
    return dramatiq_main(make_argument_parser().parse_args(["--skip-logging", *argv]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
