"""``python -m rawmap`` and the ``rawmap`` script: the command line, with Ctrl-C and closed pipes handled.

Kept free of imports at module level: a Ctrl-C while Python is still
loading typer and rawmap (the first few tenths of a second) ends with one
``Interrupted.`` line and exit code 130, not a traceback.
"""

import sys


def main() -> None:
    """Run ``rawmap`` with ``sys.argv``; exit 130 on Ctrl-C, quietly 141 when stdout is closed (``| head``),
    1 with one line when memory runs out."""
    try:
        from .cli import run

        run()
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted.\n")
        sys.exit(130)
    except BrokenPipeError:
        _quiet_broken_pipe()
    except MemoryError:  # checked before the big allocations; this is what slips past them
        sys.stderr.write("Error: out of memory (close other programs, or map fewer or smaller photos at once)\n")
        sys.exit(1)


def _quiet_broken_pipe() -> None:
    """Stdout's reader went away (``rawmap export ... | head -1``): exit as a tool killed by SIGPIPE, saying nothing."""
    import os

    try:  # no "Exception ignored ... BrokenPipeError" when Python flushes stdout at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    os._exit(141)


if __name__ == "__main__":
    main()
