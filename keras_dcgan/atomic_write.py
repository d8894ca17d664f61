"""Writing a file so that a reader sees either the old file or the whole new one. Standard library only.

The new content goes to a temporary file with a unique name in the same folder (so two
writers never share it, and the rename stays on one file system), which then replaces the
target with `os.replace`. A writer that fails or is killed leaves the target as it was (a killed
one may leave its hidden temporary file behind).
"""

import contextlib
import json
import os
import uuid


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path to write to; on success it replaces `path`, on error it is removed.

    The temporary name keeps `path`'s extension, for writers that choose the format by it
    (Keras' `.keras`, Matplotlib's `.png`).
    """
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    # Not tempfile.mkstemp: its files are private (0600); the writer creates this one with the usual permissions.
    temporary = os.path.join(folder, f".{name}.{uuid.uuid4().hex}.tmp{os.path.splitext(name)[1]}")
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
        raise


def write_bytes(path, content):
    with atomic_path(path) as temporary, open(temporary, "wb") as file:
        file.write(content)


def write_text(path, text):
    write_bytes(path, text.encode())


def write_json(path, content):
    write_text(path, json.dumps(content, indent=2) + "\n")
