"""The errors an export raises for things the user can fix (the CLI prints them and exits 2)."""


class ExportError(ValueError):
    """A run dir, checkpoint, export root or version that cannot be exported from or to."""


class ParityError(ExportError):
    """An exported model's outputs differ from the Keras generator's by more than the tolerance."""
