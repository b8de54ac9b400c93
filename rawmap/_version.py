"""The package's version, in a module of its own: the writers stamp it in every file they make."""

__version__ = "0.1.0"
