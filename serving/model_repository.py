"""Which model session serves a request, and each version's state: TF Serving's model lifecycle for `keras-dcgan serve`.

    repository = ModelRepository("dcgan")
    watcher = BasePathWatcher(repository, "exports/dcgan", read_model_config("models.config", "dcgan"), "models.config")
    watcher.start_serving()                          # load what the policy asks for, now; then check the labels
    watcher.start(poll_seconds=1.0)                  # then keep looking, on a thread (request_reload: re-read the file)
    with repository.lease("dcgan", label="stable") as lease:
        images = lease.session.generate(latents)     # lease.version: the version that answered
    repository.statuses("dcgan")                     # [VersionStatus(2, "AVAILABLE", ...), VersionStatus(1, "END", ...)]

`ModelRepository` is what an API asks: the session of a model at a version, at a label or at
the latest available version, held by a lease while a request uses it, and the state of every
version it has known (LOADING, AVAILABLE, UNLOADING, END, newest first). A server of one file
(`serve --onnx` or `--tflite`) is a repository of one version (`ModelRepository.of_session`).

`BasePathWatcher` drives it from a model base path of numeric version folders, as TF Serving's
file-system source and availability-preserving manager do: each poll lists the complete
folders (a folder whose manifest.json is not there yet is still being written: it is looked at
again next poll, never counted as failed), asks the version policy which to serve, loads and
checks the new ones (GeneratorSession: manifest, size and SHA-256) before they take a request,
each from the file its manifest names for the runtime served (`serve --runtime`: ONNX or LiteRT),
and retires the versions that left the policy or whose folder went away. A version that fails
its check ends in state END with the error in its status and is never served; it is not tried
again until it leaves the policy and comes back. A version that retires stops taking new leases
(UNLOADING) and ends (END) once the requests in flight on it have finished. The last version
serving is kept while a newer one the policy asks for is still loading or has failed, so that
the model stays available. Version labels may name only versions the policy serves that are
AVAILABLE when the config is applied, as TF Serving without
--allow_version_labels_for_unavailable_models.

Each server process keeps its own repository and watcher: worker processes polling the same
folder and reading the same config file reach the same versions. A config reload first runs a
poll under the current policy, so that whether a label's version is available does not depend
on when a worker last polled.
"""

import logging
import os
import pathlib
import threading
from dataclasses import dataclass

from keras_dcgan.contract import MANIFEST_NAME, ManifestError
from keras_dcgan.serving.manifest import read_manifest
from keras_dcgan.serving.model_config import ModelConfig, ModelConfigError, read_model_config
from keras_dcgan.serving.runtimes import DEFAULT_RUNTIME, RUNTIME_NAMES
from keras_dcgan.serving.session import GeneratorSession

LOADING, AVAILABLE, UNLOADING, END = "LOADING", "AVAILABLE", "UNLOADING", "END"
DEFAULT_POLL_SECONDS = 1.0  # TF Serving's --file_system_poll_wait_seconds default

logger = logging.getLogger(__name__)


class ServableNotFound(LookupError):
    """No available version of the model answers: unknown model (`version` None), unknown or unavailable version."""

    def __init__(self, model_name, version=None):
        super().__init__(model_name, version)
        self.model_name = model_name
        self.version = version


class UnknownLabel(LookupError):
    """The request names a version label the config does not define."""

    def __init__(self, label):
        super().__init__(label)
        self.label = label


@dataclass(frozen=True)
class VersionStatus:
    """One version's state as TF Serving's GetModelStatus reports it; error_code "OK" unless its load failed."""

    version: int
    state: str
    error_code: str = "OK"
    error_message: str = ""


class _Version:
    """A version's mutable record, changed under the repository's lock."""

    __slots__ = ("version", "state", "session", "in_flight", "error_code", "error_message", "failed_while_aspired")

    def __init__(self, version):
        self.version = version
        self.state = LOADING
        self.session = None
        self.in_flight = 0
        self.error_code, self.error_message = "OK", ""
        self.failed_while_aspired = False


class Lease:
    """A version held for one request: `session` and `version`. Release it once (more calls do nothing), or use `with`."""

    __slots__ = ("session", "version", "_record", "_repository")

    def __init__(self, repository, record):
        self._repository, self._record = repository, record
        self.session, self.version = record.session, record.version

    def release(self):
        if self._record is not None:
            record, self._record = self._record, None
            self._repository._release(record)

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.release()


class ModelRepository:
    """The versions of one model, their states and labels; `lease` and `statuses` are safe from any thread."""

    def __init__(self, model_name):
        self.model_name = model_name
        self.on_change = None  # called with no argument after a version's state changes (e.g. to update a metric)
        self._lock = threading.Lock()
        self._versions = {}  # version -> _Version
        self._labels = {}
        self._latest = None  # the highest AVAILABLE _Version: where a request without version goes

    @classmethod
    def of_session(cls, session, model_name, version):
        """A repository serving `session` as the one version `version`, for good."""
        repository = cls(model_name)
        repository._set_available(repository._begin_load(version), session)
        return repository

    def lease(self, model_name, version=None, label=None):
        """Hold the version that answers a request for `model_name` at `version`, `label`, or the latest (neither)."""
        if model_name != self.model_name:
            raise ServableNotFound(model_name)
        with self._lock:
            if label is not None:
                if label not in self._labels:
                    raise UnknownLabel(label)
                version = self._labels[label]
            record = self._latest if version is None else self._versions.get(version)
            if record is None or record.state != AVAILABLE:
                raise ServableNotFound(model_name, version)
            record.in_flight += 1
        return Lease(self, record)

    def statuses(self, model_name, version=None):
        """VersionStatus of every version known (or of `version`), newest first; ServableNotFound if there is none."""
        if model_name != self.model_name:
            raise ServableNotFound(model_name)
        with self._lock:
            records = sorted(self._versions.values(), key=lambda record: -record.version)
            statuses = [VersionStatus(r.version, r.state, r.error_code, r.error_message) for r in records]
        if version is not None:
            statuses = [status for status in statuses if status.version == version]
        if not statuses:
            raise ServableNotFound(model_name, version)
        return statuses

    @property
    def labels(self):
        with self._lock:
            return dict(self._labels)

    def available_versions(self):
        with self._lock:
            return sorted(version for version, record in self._versions.items() if record.state == AVAILABLE)

    def latest_version(self):
        """The version a request without version or label gets, or None while none is available."""
        with self._lock:
            return None if self._latest is None else self._latest.version

    # -- changes, made by BasePathWatcher (or of_session) -----------------------------------------------------------

    def replace_session(self, version, session):
        """Serve `session` as `version` from now on (`serve --onnx` or `--tflite` reloading its file); requests that hold the one before finish on it."""
        with self._lock:
            before = self._versions.get(version)
            record = self._versions[version] = _Version(version)
            record.session, record.state = session, AVAILABLE
            if before is not None:
                before.state = UNLOADING
                self._end_if_unused(before)
            self._refresh_latest()
        self._changed()

    def _begin_load(self, version):
        with self._lock:
            record = self._versions[version] = _Version(version)
        self._changed()
        return record

    def _set_available(self, record, session):
        with self._lock:
            record.session, record.state = session, AVAILABLE
            self._refresh_latest()
        self._changed()

    def _set_failed(self, record, error_code, message):
        with self._lock:
            record.state, record.error_code, record.error_message = END, error_code, message
            record.failed_while_aspired = True
        self._changed()

    def _begin_unload(self, record):
        """No new leases; END (session dropped) at once if none is held, else when the last is released."""
        with self._lock:
            record.state = UNLOADING
            self._refresh_latest()
            ended = self._end_if_unused(record)
        self._changed()
        if ended:
            logger.info("%s version %d unloaded", self.model_name, record.version)

    def _set_labels(self, labels):
        with self._lock:
            self._labels = dict(labels)

    def _release(self, record):
        with self._lock:
            record.in_flight -= 1
            ended = record.state == UNLOADING and self._end_if_unused(record)
        if ended:
            self._changed()
            logger.info("%s version %d unloaded after its last request in flight", self.model_name, record.version)

    def _end_if_unused(self, record):
        if record.in_flight:
            return False
        record.state, record.session = END, None
        return True

    def _refresh_latest(self):
        available = [record for record in self._versions.values() if record.state == AVAILABLE]
        self._latest = max(available, key=lambda record: record.version, default=None)

    def _records(self):
        with self._lock:
            return dict(self._versions)

    def _changed(self):
        if self.on_change is not None:
            self.on_change()


def load_version(folder, version, runtime=DEFAULT_RUNTIME, threads=None):
    """The checked GeneratorSession of version folder `folder` on `runtime` (a key of RUNTIME_NAMES).

    Its manifest records its version and, in the runtime's entry, names the file to serve. A
    folder without that file raises FileNotFoundError (TF Serving's NOT_FOUND in its status).
    """
    manifest_path = pathlib.Path(folder) / MANIFEST_NAME
    manifest = read_manifest(manifest_path)
    if manifest.get("version", version) != version:
        raise ManifestError(f"{manifest_path} records version {manifest['version']}, but its folder is version {version}")
    kind = RUNTIME_NAMES[runtime].kind
    if runtime not in manifest:
        raise FileNotFoundError(
            f"{manifest_path} has no {runtime!r} entry: version {version} was exported without a {kind} file "
            f"for --runtime {runtime}; re-export it, or serve another --runtime"
        )
    model_file = manifest[runtime].get("file")
    if not model_file:
        raise ManifestError(f"{manifest_path}: {runtime}.file is missing; it names the {kind} file to serve")
    model_path = pathlib.Path(folder) / model_file
    if not model_path.is_file():
        raise FileNotFoundError(f"{model_path} not found: {manifest_path} names it as the {kind} file of version {version} (--runtime {runtime})")
    return GeneratorSession(model_path, manifest_path, threads=threads)


def _error_code(error):
    """TF Serving's error code name for a failed load, as its status answer carries it."""
    if isinstance(error, FileNotFoundError):
        return "NOT_FOUND"
    return "INVALID_ARGUMENT" if isinstance(error, ValueError) else "UNKNOWN"


class BasePathWatcher:
    """Keeps `repository` in step with the version folders under `base_path` and the config (policy, labels).

    `config_path`, when given, is the file `request_reload` re-reads (SIGHUP); `config` is what it held at start.
    `load(folder, version)` returns a checked session, or raises to mark the version failed.
    """

    def __init__(self, repository, base_path, config=None, config_path=None, load=load_version):
        self.repository = repository
        self.base_path = pathlib.Path(base_path)
        self.config = config or ModelConfig(repository.model_name)
        self.config_path = config_path
        self.load = load
        self._reload_requested = threading.Event()
        self._stopped = threading.Event()
        self._thread = None
        self._waiting_for_manifest = set()  # folders already logged as still being written
        self._listing_failed = False

    def start_serving(self):
        """The first poll, then the labels: ModelConfigError if a label names a version that is not available."""
        if not self.base_path.is_dir():
            raise ValueError(f"model base path {self.base_path} is not a folder: it holds one numeric folder per version (e.g. 1/)")
        self.poll()
        self._check_labels(self.config, self._scan() or {})
        self.repository._set_labels(self.config.labels)

    def start(self, poll_seconds=DEFAULT_POLL_SECONDS):
        """Poll every `poll_seconds` on a daemon thread, and reload the config when asked (`request_reload`)."""
        self._thread = threading.Thread(target=self._run, args=(poll_seconds,), name="model-versions", daemon=True)
        self._thread.start()

    def stop(self):
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()

    def request_reload(self):
        """Re-read the config file at the next chance: safe to call from a signal handler."""
        self._reload_requested.set()

    def _run(self, poll_seconds):
        while not self._stopped.is_set():
            reload = self._reload_requested.wait(poll_seconds)
            if self._stopped.is_set():
                return
            try:
                if reload:
                    self._reload_requested.clear()
                    self.reload()
                else:
                    self.poll()
            except Exception:  # a fault of one poll must not stop the next ones
                logger.exception("%s: polling %s failed", self.repository.model_name, self.base_path)

    def reload(self):
        """Re-read `config_path` and apply it; a bad file, or a label on a version not available, keeps the old config."""
        if self.config_path is None:
            logger.info("%s: no model config file to re-read; serving %s", self.repository.model_name, self.config.policy.describe())
            return False
        try:
            config = read_model_config(self.config_path, self.repository.model_name)
            self.poll()  # versions already on disk under the current policy first: every worker then sees the same ones
            self._check_labels(config, self._scan() or {})
        except ModelConfigError as error:
            logger.error("%s; keeping the config in force (%s, labels %s)", error, self.config.policy.describe(), self.config.labels or "none")
            return False
        self.config = config
        self.repository._set_labels(config.labels)
        logger.info("%s: applied %s (serving %s, labels %s)", self.repository.model_name, self.config_path, config.policy.describe(), config.labels or "none")
        self.poll()
        return True

    def poll(self):
        """One look at the base path: load what the policy newly asks for, retire what it no longer does."""
        found = self._scan()
        if found is None:
            return  # the base path cannot be listed right now: keep serving what is loaded
        aspired = self.config.policy.select(found)
        records = self.repository._records()
        for version, record in records.items():
            if version not in aspired:
                record.failed_while_aspired = False  # a failed version is tried again if it comes back
        self._retire(aspired)
        for version in sorted(aspired, reverse=True):  # the newest first, as TF Serving loads them
            record = records.get(version)
            if record is None or (record.state == END and not record.failed_while_aspired):
                self._load(version, found[version])
        self._retire(aspired)

    def _load(self, version, folder):
        record = self.repository._begin_load(version)
        try:
            session = self.load(folder, version)
        except Exception as error:  # any failure to load is this version's, reported in its status
            self.repository._set_failed(record, _error_code(error), str(error))
            logger.error("%s version %d failed to load and is not served: %s", self.repository.model_name, version, error)
            return
        self.repository._set_available(record, session)
        logger.info("%s version %d loaded from %s and available", self.repository.model_name, version, folder)

    def _retire(self, aspired):
        """Unload available versions the policy no longer serves, but keep one if an aspired version is not available yet."""
        records = self.repository._records()
        serving = [version for version, record in records.items() if record.state == AVAILABLE]
        retiring = sorted(version for version in serving if version not in aspired)
        if aspired and not any(version in aspired for version in serving):
            retiring = retiring[:-1]  # availability first: the newest retiring version serves until an aspired one does
        for version in retiring:
            logger.info("%s version %d retires: %s", self.repository.model_name, version, self._why_retired(version))
            self.repository._begin_unload(records[version])

    def _why_retired(self, version):
        if not (self.base_path / str(version)).is_dir():
            return "its folder is gone"
        return f"the policy serves {self.config.policy.describe()}"

    def _check_labels(self, config, found):
        aspired = config.policy.select(found)
        available = set(self.repository.available_versions()) & aspired
        for label, version in sorted(config.labels.items()):
            if version not in available:
                where = config.path or "the model config"
                raise ModelConfigError(
                    f"{where}: version_labels {label!r} names version {version} of {config.name}, which is not available "
                    f"(available: {', '.join(map(str, sorted(available))) or 'none'}); labels may name only loaded versions"
                )

    def _scan(self):
        """{version: folder} of the complete version folders (their manifest is there), or None if the base path cannot be listed."""
        try:
            names = os.listdir(self.base_path)
        except OSError as error:
            if not self._listing_failed:
                logger.error("cannot list the model base path %s: %s; serving what is loaded", self.base_path, error.strerror or error)
            self._listing_failed = True
            return None
        self._listing_failed = False
        found = {}
        for name in sorted(names):
            if not (name.isascii() and name.isdigit()):
                continue  # not a version folder (e.g. an export's .partial-* staging folder)
            folder = self.base_path / name
            if (folder / MANIFEST_NAME).is_file():
                found[int(name)] = folder
                self._waiting_for_manifest.discard(folder)
            elif folder.is_dir() and folder not in self._waiting_for_manifest:
                self._waiting_for_manifest.add(folder)
                logger.info("%s has no %s yet: looking again at the next poll", folder, MANIFEST_NAME)
        return found
