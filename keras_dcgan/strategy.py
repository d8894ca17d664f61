"""Choosing the tf.distribute strategy, and which worker writes the run's files.

`auto` picks: TF_CONFIG set -> multi-worker; a TPU resolver answers -> TPU; several
GPUs -> mirrored; otherwise the default (one device) strategy.
"""

import json
import os

import tensorflow as tf


def _tpu_resolver():
    try:
        return tf.distribute.cluster_resolver.TPUClusterResolver()
    except (ValueError, tf.errors.NotFoundError, RuntimeError):
        return None


def make_strategy(name):
    if name == "auto":
        if os.environ.get("TF_CONFIG"):
            name = "multi-worker"
        elif _tpu_resolver() is not None:
            name = "tpu"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi-worker":
        if not os.environ.get("TF_CONFIG"):
            raise ValueError("--strategy multi-worker needs TF_CONFIG describing the cluster and this worker")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        # Untested here (no TPU on the project's machines); follows the TF TPU guide.
        resolver = _tpu_resolver()
        if resolver is None:
            raise ValueError("--strategy tpu: no TPU found (TPUClusterResolver could not resolve one)")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"unknown strategy {name!r}")


def worker_task():
    """(task type, task index) from TF_CONFIG, or ("chief", 0) for a single process."""
    cluster_spec = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = cluster_spec.get("task") or {}
    return task.get("type", "chief"), int(task.get("index", 0))


def is_chief():
    """The chief writes checkpoints, samples, logs and the generator; other workers write to scratch."""
    task_type, task_index = worker_task()
    if task_type == "chief":
        return True
    cluster = json.loads(os.environ.get("TF_CONFIG") or "{}").get("cluster", {})
    # Without an explicit chief, worker 0 is the chief (TensorFlow's convention).
    return task_type == "worker" and task_index == 0 and "chief" not in cluster
