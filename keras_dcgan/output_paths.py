"""Checking a command's output paths before its work. Standard library only (the serving side uses it).

A command that computes for minutes and only then finds it cannot write its result loses the
work, so every output path is checked first: its folder exists or can be made, and a file can
be created there (tried for real with an unnamed temporary file, as permission bits say nothing
for root or on file systems such as /proc). A result file that exists is kept unless the user
passes --force, as `cp -n` keeps it. Nothing is created by the checks; the writers make the
folders when they write.
"""

import os
import tempfile


class OutputPathError(ValueError):
    """An output path that cannot be written, or that would overwrite a file the user did not give up."""


def check_output_folder(folder, flag):
    """OutputPathError unless `folder` is a folder, or can be made, and files can be created in it."""
    folder = os.fspath(folder)
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise OutputPathError(f"{flag} {folder} is a file, not a folder")
    _check_can_create_in(folder, flag, folder)


def check_output_files(paths, flag, force=False):
    """OutputPathError unless every file of `paths` can be written; an existing one only with `force`.

    The message names the flag and the first offending path, so that the user knows what to change.
    """
    paths = [os.fspath(path) for path in paths]
    for path in paths:
        if os.path.isdir(path):
            raise OutputPathError(f"{flag} {path} is a folder; expected a file name")
    existing = [path for path in paths if os.path.lexists(path)]
    if existing and not force:
        more = f" (and {len(existing) - 1} more of the files it would write)" if len(existing) > 1 else ""
        raise OutputPathError(f"{flag} {existing[0]} exists{more}; pass --force to overwrite")
    for folder in dict.fromkeys(os.path.dirname(os.path.abspath(path)) for path in paths):
        _check_can_create_in(folder, flag, paths[0] if len(paths) == 1 else folder)


def make_parent_folder(path):
    """Make the folder `path` goes in (after its check passed)."""
    os.makedirs(os.path.dirname(os.path.abspath(os.fspath(path))), exist_ok=True)


def _check_can_create_in(folder, flag, named):
    """A file can be created in `folder`, or in the nearest existing folder above it, where `folder` would be made."""
    existing = os.path.abspath(folder)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise OutputPathError(f"{flag} {named} cannot be made: {existing} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except PermissionError:
        raise OutputPathError(f"{flag} {named} cannot be written: {existing} is read-only for this user") from None
    except OSError as error:
        raise OutputPathError(f"{flag} {named} cannot be written: no file can be created in {existing} ({error.strerror or error})") from None
