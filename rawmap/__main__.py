"""``python -m rawmap``: the same command line as the ``rawmap`` script."""

from .cli import main

if __name__ == "__main__":
    main()
