"""Exceptions raised by dftplug; the CLI turns them into a message and exit code 2."""


class DftplugError(Exception):
    """Base class of every error dftplug reports to the user."""


class ParseError(DftplugError):
    """A DFT output file is missing, truncated or not in the expected layout.

    The message always names the file and what is wrong with it.
    """

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class MismatchError(DftplugError):
    """Two inputs that must describe the same system do not (structure, basis, sparsity)."""
