"""Exceptions raised by dftplug; the CLI turns them into a message and exit code 2.

Every class pickles (``__reduce__`` gives back its constructor arguments), so an error raised in a
worker process of a parallel ``convert`` reaches the parent intact, naming the file.
"""


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

    def __reduce__(self):
        return type(self), (self.path, self.problem)


class MismatchError(DftplugError):
    """Two inputs that must describe the same system do not (structure, basis, sparsity)."""


class ValidationError(ParseError):
    """Data that was read completely but is not physical: non-finite values, a non-Hermitian
    matrix, an overlap that is not positive definite, an H0 that is the converged H."""
