"""Training on one device, several GPUs, or several machines (`--strategy`).

    auto         MirroredStrategy when more than one GPU is visible, else the default strategy
    mirrored     MirroredStrategy over every local GPU (or the CPU)
    multiworker  MultiWorkerMirroredStrategy; the cluster and this process' task come from the
                 TF_CONFIG environment variable, e.g. for worker 1 of two:
                 {"cluster": {"worker": ["host0:12345", "host1:12345"]}, "task": {"type": "worker", "index": 1}}

Input pipelines are built per worker by `distribute_datasets` (each worker reads its own shard,
batched per replica). The chief (worker 0) writes the run directory; the other workers keep
their checkpoints and logs in RUN/workers/<type>-<index>/ and do not evaluate or export.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import tensorflow as tf

from audio_dl.errors import UsageError

STRATEGIES = ("auto", "mirrored", "multiworker")


def make_strategy(name: str, batch_size: int) -> tf.distribute.Strategy:
    """The tf.distribute strategy called `name` (one of STRATEGIES); UsageError when batch_size
    does not split over its replicas (require_even_batches)."""
    if name == "multiworker":
        _check_tf_config()
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    elif name == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
    elif name != "auto":
        raise UsageError(f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}")
    else:
        gpus = tf.config.list_logical_devices("GPU")
        strategy = tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    require_even_batches(strategy, batch_size)
    return strategy


def require_even_batches(strategy: tf.distribute.Strategy, batch_size: int) -> None:
    """UsageError unless batch_size splits evenly over the strategy's replicas (every replica
    takes batch_size / replicas examples a step)."""
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise UsageError(f"batch_size={batch_size} does not split over the {replicas} replicas of this strategy: "
                         f"use a multiple of {replicas}")


def _check_tf_config() -> None:
    text = os.environ.get("TF_CONFIG")
    if not text:
        raise UsageError("--strategy multiworker reads the cluster from TF_CONFIG, which is not set "
                         "(see the README's 'Training beyond one machine')")
    try:
        config = json.loads(text)
        workers = config["cluster"]["worker"]
        task = config["task"]
        assert isinstance(workers, list) and task["type"] in config["cluster"]
        assert 0 <= int(task["index"]) < len(config["cluster"][task["type"]])
    except (ValueError, KeyError, TypeError, AssertionError):
        raise UsageError('TF_CONFIG must be JSON like {"cluster": {"worker": ["host:port", ...]}, '
                         f'"task": {{"type": "worker", "index": 0}}}}; got {text[:120]!r}') from None


def is_distributed(strategy: tf.distribute.Strategy) -> bool:
    """Whether fit runs under a strategy that splits batches (not the default strategy)."""
    return isinstance(strategy, (tf.distribute.MirroredStrategy, tf.distribute.MultiWorkerMirroredStrategy))


def task(strategy: tf.distribute.Strategy) -> tuple[str, int]:
    """(task type, index) of this process: ("worker", 0) on a single machine."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and resolver is not None:
        return resolver.task_type or "worker", int(resolver.task_id or 0)
    return "worker", 0


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """The process that writes the run directory, evaluates and exports: the `chief` task, or
    worker 0 when the cluster has no chief."""
    kind, index = task(strategy)
    if kind == "chief":
        return True
    resolver = getattr(strategy, "cluster_resolver", None)
    has_chief = resolver is not None and "chief" in resolver.cluster_spec().as_dict()
    return kind == "worker" and index == 0 and not has_chief


def worker_dir(run_dir: Path, strategy: tf.distribute.Strategy) -> Path:
    """run_dir for the chief; run_dir/workers/<type>-<index> for the other workers."""
    if is_chief(strategy):
        return Path(run_dir)
    kind, index = task(strategy)
    return Path(run_dir) / "workers" / f"{kind}-{index}"


def distribute_datasets(strategy: tf.distribute.Strategy,
                        make: Callable[[tf.distribute.InputContext], tf.data.Dataset]):
    """make(context) -> dataset batched per replica; a plain dataset under the default strategy,
    else one built on every worker with that worker's InputContext (its shard and batch size)."""
    if not is_distributed(strategy):
        return make(tf.distribute.InputContext())
    return strategy.distribute_datasets_from_function(make)


def fit(model, strategy: tf.distribute.Strategy, *args, **kwargs):
    """model.fit(*args, **kwargs) under `strategy` (the model was built and compiled in its scope).

    Keras 3.13's fit is broken under MultiWorkerMirroredStrategy (keras-team/keras#20585) in two
    places, worked around here without touching Keras:
    - before the first step it all-reduces the first data batch to build the metrics, which fails
      for an (x, y, weight) tuple and for batches of different shapes on different workers. The
      model is detached from the strategy it was built in (Keras then builds while tracing the
      train step) and fit runs inside the strategy's scope, the optimizer's variables built first;
    - it averages each step's scalar logs over the workers along axis 0, which scalars lack: the
      train and test steps here return each log with a leading axis of length 1.

    Running out of memory (a batch or model too big for the device) is a UsageError.
    """
    try:
        if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            return model.fit(*args, **kwargs)
        model._distribute_strategy = None  # noqa: SLF001 - the property falls back to the scope's strategy
        model.train_step = _logs_with_batch_axis(model.train_step)
        model.test_step = _logs_with_batch_axis(model.test_step)
        with strategy.scope():
            model.optimizer.build(model.trainable_variables)
            return model.fit(*args, **kwargs)
    except (tf.errors.ResourceExhaustedError, MemoryError):
        raise UsageError("out of memory while training: make batch_size or the model smaller (the epochs "
                         "saved so far stay in the run dir: run again to resume)") from None


def _logs_with_batch_axis(step):
    def step_with_batch_axis(data):
        return {name: tf.reshape(value, [1]) for name, value in step(data).items()}
    return step_with_batch_axis
