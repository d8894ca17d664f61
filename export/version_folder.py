"""TF Serving's model base path `<export_root>/<name>/` and its numeric version folders.

TF Serving loads any new numeric folder it sees there, so a version folder must appear
complete: it is built in a hidden staging folder beside it (`.partial-<version>-*`, not a
number, so TF Serving ignores it) and renamed into place in one step. An existing version
is never overwritten. On any failure the staging folder is removed, and so are the base
and root folders if this export created them and they are still empty.

An export killed outright (SIGKILL, power loss) cannot clean up: its staging folder stays.
Each export holds an advisory lock (flock) on its staging folder while it works, which the
kernel drops when the process dies, so the next export under the same base path removes
every staging folder nobody holds and leaves those of exports still running.
"""

import contextlib
import fcntl
import os
import shutil
import tempfile

from keras_dcgan.export.errors import ExportError

STAGING_PREFIX = ".partial-"


def check_model_name(name):
    if not name or name in (".", "..") or name.startswith(".") or "/" in name or os.sep in name:
        raise ExportError(f"model name must be a plain folder name (no '/', not starting with '.'), got {name!r}")


def existing_versions(base_path):
    if not os.path.isdir(base_path):
        return []
    return sorted(int(entry) for entry in os.listdir(base_path) if entry.isascii() and entry.isdigit())


def choose_version(base_path, requested=None):
    """`requested` if it is free, else an error; the next free version (1 for a new model) when None."""
    versions = existing_versions(base_path)
    if requested is None:
        return (versions[-1] + 1) if versions else 1
    if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
        raise ExportError(f"version must be a positive integer, got {requested!r}")
    if os.path.exists(os.path.join(base_path, str(requested))):
        raise ExportError(
            f"{os.path.join(base_path, str(requested))} already exists; versions are never overwritten "
            f"(next free version: {(versions[-1] + 1) if versions else 1})"
        )
    return requested


@contextlib.contextmanager
def staged_version_folder(base_path, version):
    """Yield an empty staging folder; when the block succeeds, rename it to `<base_path>/<version>`."""
    created = _make_folders(base_path)
    final_path = os.path.join(base_path, str(version))
    try:
        with _locked(base_path):
            remove_stale_staging_folders(base_path)
            staging = tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{version}-", dir=base_path)
            os.chmod(staging, 0o755)  # mkdtemp makes it private; a server running as another user must read it
            lock = os.open(staging, os.O_RDONLY)
            fcntl.flock(lock, fcntl.LOCK_EX)  # held until this export ends, however it ends
    except OSError as error:
        _remove_if_empty(created)
        raise ExportError(f"cannot write in {base_path}: {error}") from error
    try:
        yield staging
        if os.path.exists(final_path):  # another export took this version meanwhile
            raise ExportError(f"{final_path} appeared during the export; versions are never overwritten")
        try:
            os.rename(staging, final_path)
        except OSError as error:
            raise ExportError(f"cannot move the finished export into {final_path}: {error}") from error
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        _remove_if_empty(created)
        raise
    finally:
        os.close(lock)


def remove_stale_staging_folders(base_path):
    """Remove the `.partial-*` folders under base_path whose export is gone (no process holds their lock)."""
    for entry in os.listdir(base_path):
        path = os.path.join(base_path, entry)
        if not entry.startswith(STAGING_PREFIX) or not os.path.isdir(path):
            continue
        try:
            lock = os.open(path, os.O_RDONLY)
        except OSError:
            continue  # removed meanwhile by its own export, or unreadable: not ours to judge
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            shutil.rmtree(path, ignore_errors=True)
        except BlockingIOError:
            pass  # an export is writing it right now
        finally:
            os.close(lock)


@contextlib.contextmanager
def _locked(folder):
    """Hold folder's lock: cleaning up and creating-then-locking a staging folder never interleave."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def _make_folders(base_path):
    """Create base_path and any missing parents; returns those created, deepest first."""
    missing = []
    path = os.path.abspath(base_path)
    while not os.path.exists(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    if os.path.exists(path) and not os.path.isdir(path):
        raise ExportError(f"cannot export under {base_path}: {path} is a file, not a folder")
    for folder in reversed(missing):
        try:
            os.mkdir(folder)
        except OSError as error:
            _remove_if_empty(missing[missing.index(folder) + 1 :])
            raise ExportError(f"cannot create the export folder {folder}: {error}") from error
    return missing


def _remove_if_empty(folders):
    for folder in folders:  # deepest first
        with contextlib.suppress(OSError):
            os.rmdir(folder)
