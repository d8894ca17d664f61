"""Choosing the tf.distribute strategy, and which worker writes the run's files.

`auto` picks, in this order: TF_CONFIG set -> multi-worker (MultiWorkerMirroredStrategy);
several GPUs -> mirrored (MirroredStrategy); a TPU resolver answers -> TPU (TPUStrategy);
otherwise the default strategy (one device).

In a multi-worker job the chief (the task of type "chief", or worker 0 when the cluster
has no chief, as TensorFlow does) writes the run directory; the others write to scratch.
"""

import hashlib
import json
import os
import tempfile

import tensorflow as tf

STRATEGY_NAMES = {
    "default": "the default strategy (one device)",
    "mirrored": "MirroredStrategy",
    "multi-worker": "MultiWorkerMirroredStrategy",
    "tpu": "TPUStrategy",
}


class ClusterConfigError(ValueError):
    """TF_CONFIG is missing, not JSON, or does not describe this worker."""


def read_tf_config():
    """The parsed TF_CONFIG ({} when unset), checked to name a task that is in the cluster."""
    text = os.environ.get("TF_CONFIG")
    if not text:
        return {}
    try:
        tf_config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ClusterConfigError(f"TF_CONFIG is not valid JSON ({error}): {text[:200]!r}") from None
    cluster = tf_config.get("cluster") if isinstance(tf_config, dict) else None
    task = tf_config.get("task") if isinstance(tf_config, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict) or "type" not in task:
        raise ClusterConfigError(
            'TF_CONFIG must look like {"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", '
            f'"index": 0}}}}; got {text[:200]!r}'
        )
    task_type, task_index = task["type"], int(task.get("index", 0))
    if task_index >= len(cluster.get(task_type, [])):
        raise ClusterConfigError(
            f"TF_CONFIG: task {task_type} {task_index} is not in the cluster "
            f"({ {name: len(addresses) for name, addresses in cluster.items()} })"
        )
    return tf_config


def _tpu_resolver():
    try:
        return tf.distribute.cluster_resolver.TPUClusterResolver()
    except (ValueError, tf.errors.NotFoundError, RuntimeError):
        return None


def resolve_strategy_name(name):
    """The concrete strategy `auto` stands for on this machine; other names unchanged."""
    if name != "auto":
        return name
    if read_tf_config():
        return "multi-worker"
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return "mirrored"
    if _tpu_resolver() is not None:
        return "tpu"
    return "default"


def make_strategy(name):
    name = resolve_strategy_name(name)
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi-worker":
        if not read_tf_config():
            raise ClusterConfigError(
                "--strategy multi-worker needs TF_CONFIG describing the cluster and this worker "
                "(or use `keras-dcgan fit --workers N` to start N local workers)"
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        # Untested here (no TPU on the project's machines); follows the TF TPU guide.
        resolver = _tpu_resolver()
        if resolver is None:
            raise ValueError("--strategy tpu: no TPU found (TPUClusterResolver could not resolve one)")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"unknown strategy {name!r}; expected one of auto, {', '.join(STRATEGY_NAMES)}")


def describe(strategy):
    """E.g. "MultiWorkerMirroredStrategy: 2 replicas (2 workers)", for the start-up message."""
    # Public names: MultiWorkerMirroredStrategy's class is called CollectiveAllReduceStrategy.
    kinds = [
        (tf.distribute.MultiWorkerMirroredStrategy, "MultiWorkerMirroredStrategy"),
        (tf.distribute.MirroredStrategy, "MirroredStrategy"),
        (tf.distribute.TPUStrategy, "TPUStrategy"),
    ]
    name = next((name for kind, name in kinds if isinstance(strategy, kind)), "default strategy")
    replicas = strategy.num_replicas_in_sync
    workers = worker_count() if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) else 1
    where = f" ({workers} workers)" if workers > 1 else ""
    return f"{name}: {replicas} replica{'s' if replicas > 1 else ''}{where}"


def worker_count():
    """The processes of the cluster TF_CONFIG describes that train: its chief and workers (1 without TF_CONFIG)."""
    cluster = read_tf_config().get("cluster", {})
    return max(1, sum(len(cluster.get(task_type, [])) for task_type in ("chief", "worker")))


def worker_task():
    """(task type, task index) from TF_CONFIG, or ("chief", 0) for a single process."""
    task = read_tf_config().get("task") or {}
    return task.get("type", "chief"), int(task.get("index", 0))


def is_chief():
    """The chief writes checkpoints, samples, logs and the generator; other workers write to scratch."""
    task_type, task_index = worker_task()
    if task_type == "chief":
        return True
    cluster = read_tf_config().get("cluster", {})
    # Without an explicit chief, worker 0 is the chief (TensorFlow's convention).
    return task_type == "worker" and task_index == 0 and "chief" not in cluster


def scratch_dir(run_dir):
    """Where a non-chief worker writes its share of every collective save, deleted at the end.

    One fixed folder per (run dir, task) in the temp dir: a rerun after a crash clears the
    folder a killed worker could not delete.
    """
    task_type, task_index = worker_task()
    run_key = hashlib.sha256(os.path.abspath(run_dir).encode()).hexdigest()[:12]
    return os.path.join(tempfile.gettempdir(), f"keras-dcgan-{task_type}-{task_index}-{run_key}")


class WorkersDisagree(ValueError):
    """Workers would resume from different steps: they do not see the same run directory."""


def check_workers_agree(strategy, step, run_dir):
    """Raise WorkersDisagree on every worker unless all of them start from `step`.

    A worker that cannot read the chief's checkpoints (the run directory not on storage all
    workers share) would start over while the others resume; the job would then hang in a
    collective or train from mismatched states. One all-gather of every replica's step finds out.
    """
    if strategy.num_replicas_in_sync == 1:
        return
    steps = _gather_steps(strategy, step)
    lowest, highest = int(steps.min()), int(steps.max())
    if lowest != highest:
        raise WorkersDisagree(
            f"the workers would resume from different steps ({lowest} to {highest}; this one from {step}): "
            f"every worker must read the same run directory {run_dir}, with the chief's checkpoints in it. "
            "On a cluster, put --run-dir on storage that all workers share."
        )


def finish_together(strategy, step):
    """A last collective, so that no worker exits while another still works.

    The chief hosts the cluster's coordination service: once it has exited, the other
    workers' heartbeats fail and TensorFlow aborts their collectives.
    """
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        _gather_steps(strategy, step)


def _gather_steps(strategy, step):
    """Every replica's `step`, gathered on every worker (a collective: all must call it)."""

    @tf.function
    def gather_steps():
        return strategy.gather(strategy.run(lambda: tf.constant([step], tf.int64)), axis=0)

    return gather_steps().numpy()
