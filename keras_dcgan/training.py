"""`train(config)`: the whole `keras-dcgan fit` job, resumable.

run_dir/
    config.json            what was asked; a resumption with conflicting values is refused
    checkpoints/           epoch-N (kept) and backup/step-S (newest only): see checkpoints.py
    samples/epoch_NNNN.png grids from a fixed latent; samples/progress.gif at the end
    logs/                  TensorBoard: losses per epoch, sample grids
    generator.keras        the final generator

Rerunning the same command on the same run_dir continues from the furthest saved state,
in the middle of an epoch if that is where it stopped.
"""

import hashlib
import os
import shutil
import time
from dataclasses import dataclass

import keras
import numpy as np

from keras_dcgan import image_grid
from keras_dcgan.callbacks import CheckpointSaver, DivergenceGuard, SampleGrids, ScalarSummaries, sample_path
from keras_dcgan.checkpoints import TrainingCheckpoints
from keras_dcgan.config import TrainConfig
from keras_dcgan.data import check_code_labels, load_images, steps_per_epoch, training_dataset
from keras_dcgan.gan import DCGAN
from keras_dcgan.networks import build_discriminator, build_generator
from keras_dcgan.precision import resolve_precision
from keras_dcgan.strategy import check_workers_agree, describe, finish_together, is_chief, make_strategy, scratch_dir

CONFIG_FILE = "config.json"
GENERATOR_FILE = "generator.keras"


@dataclass(frozen=True)
class TrainingResult:
    run_dir: str
    start_step: int
    final_step: int
    images_per_second: float | None
    history: dict


def build_model(config, fused_batch_norm=True):
    """The compiled DCGAN of `config`; call inside the strategy's scope.

    `fused_batch_norm=False` trains with Keras' own BatchNormalization (for benchmarks).
    """
    generator = build_generator(config, fused_batch_norm=fused_batch_norm)
    discriminator = build_discriminator(config, fused_batch_norm=fused_batch_norm)
    model = DCGAN(
        generator, discriminator, config.latent_dim, seed=config.seed, categorical_code=config.categorical_code,
        code_labels=config.code_labels,
    )
    model.compile(
        generator_optimizer=keras.optimizers.Adam(
            config.generator_lr, beta_1=config.beta1,
            # The moving average lives in the optimiser, so checkpoints save and resume it.
            use_ema=config.generator_ema > 0, ema_momentum=config.generator_ema,
        ),
        discriminator_optimizer=keras.optimizers.Adam(config.discriminator_lr, beta_1=config.beta1),
    )
    return model


def check_run_dir(config):
    """Save config.json in a new run dir, or check it against the one already there."""
    path = os.path.join(config.run_dir, CONFIG_FILE)
    if not os.path.exists(path):
        return False
    saved = TrainConfig.load(path)
    conflicts = config.conflicts_with(saved)
    if conflicts:
        described = "; ".join(f"{name}: run dir has {old!r}, asked for {new!r}" for name, (old, new) in conflicts.items())
        raise ValueError(
            f"{config.run_dir} holds a run with a different configuration ({described}). "
            "Use the same flags to resume it, or a new --run-dir to start another run."
        )
    return True


def train(config, verbose="auto"):
    resuming = check_run_dir(config)
    chief = is_chief()
    # Other workers take part in every save (they hold distributed variables) but write to scratch.
    write_dir = config.run_dir if chief else scratch_dir(config.run_dir)
    if not chief:
        shutil.rmtree(write_dir, ignore_errors=True)  # left by this worker if it was killed
    try:
        return _train(config, write_dir, chief, resuming, verbose)
    finally:
        if not chief:
            shutil.rmtree(write_dir, ignore_errors=True)


def _train(config, write_dir, chief, resuming, verbose):
    examples = load_images(config, "train")
    labels = code_labels(config, examples)  # checked before anything is written
    os.makedirs(write_dir, exist_ok=True)

    policy, why = resolve_precision(config.precision)
    keras.mixed_precision.set_dtype_policy(policy)
    strategy = make_strategy(config.strategy)
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise ValueError(
            f"batch_size {config.batch_size} is the global batch and must split evenly over the {replicas} replicas"
        )
    if chief and not resuming:  # only once the run can start: a refused run leaves no config.json
        config.save(os.path.join(write_dir, CONFIG_FILE))
    print(f"Training with {describe(strategy)}; global batch {config.batch_size}, "
          f"{config.batch_size // replicas} per replica.")
    print(f"Precision {policy} ({why}).")
    steps = steps_per_epoch(len(examples), config.batch_size)
    total_steps = steps * config.epochs
    with strategy.scope():
        model = build_model(config)

    checkpoints = TrainingCheckpoints(os.path.join(config.run_dir, "checkpoints"), model, steps)
    saved = checkpoints.latest()
    start_step = checkpoints.restore(saved.path) if saved else 0
    check_workers_agree(strategy, start_step, config.run_dir)
    if saved:
        print(f"Resuming {config.run_dir} from {saved.path} (step {start_step} of {total_steps}).")
    if write_dir != config.run_dir:
        checkpoints = TrainingCheckpoints(os.path.join(write_dir, "checkpoints"), model, steps)

    samples_dir = os.path.join(write_dir, "samples")
    log_dir = os.path.join(write_dir, "logs")
    os.makedirs(samples_dir, exist_ok=True)
    callbacks = [
        DivergenceGuard(config.run_dir),  # first: nothing may be saved after a diverged step
        CheckpointSaver(checkpoints, config.backup_every_steps),
        SampleGrids(samples_dir, log_dir, config.latent_dim, config.seed, write=chief),
    ]
    if chief:
        callbacks.append(ScalarSummaries(log_dir))
        if config.eval_every:
            from keras_dcgan.evaluation.during_training import QualityEvaluation  # the classifier only when asked

            callbacks.append(QualityEvaluation(config, write_dir, log_dir))
    dataset = training_dataset(examples.images, config.batch_size, config.seed, labels=labels)

    history = {}
    started = time.perf_counter()
    epoch, done_in_epoch = divmod(start_step, steps)
    if done_in_epoch:  # killed mid-epoch: finish that epoch's remaining steps first
        print(f"Finishing epoch {epoch + 1}: {steps - done_in_epoch} of its {steps} steps are left.")
        fitted = model.fit(
            dataset, initial_epoch=epoch, epochs=epoch + 1, steps_per_epoch=steps - done_in_epoch,
            callbacks=callbacks, verbose=verbose, shuffle=False,
        )
        _extend(history, fitted.history)
        epoch += 1
    if epoch < config.epochs:
        fitted = model.fit(
            dataset, initial_epoch=epoch, epochs=config.epochs, steps_per_epoch=steps,
            callbacks=callbacks, verbose=verbose, shuffle=False,
        )
        _extend(history, fitted.history)
    seconds = time.perf_counter() - started

    final_step = int(model.global_step.numpy())
    trained_images = (final_step - start_step) * config.batch_size
    images_per_second = trained_images / seconds if trained_images else None
    generator = model.generator
    if config.generator_ema:
        from keras_dcgan.inference_generator import inference_generator

        # The weight average, in float32, with BatchNorm statistics re-estimated for it.
        generator = inference_generator(config, model.generator, model.generator_optimizer)
    save_generator(generator, os.path.join(write_dir, GENERATOR_FILE))
    if chief:
        write_progress_gif(samples_dir, config.epochs)
    if images_per_second:
        print(f"Trained {final_step - start_step} steps ({trained_images} images) in {seconds:.1f} s: "
              f"{images_per_second:.0f} images/s. Generator: {os.path.join(config.run_dir, GENERATOR_FILE)}")
    finish_together(strategy, final_step)
    # Every worker prints it (the generator as saved): equal digests show the workers ended identical.
    print(f"Weights sha256: generator {weights_digest(generator)}, "
          f"discriminator {weights_digest(model.discriminator)} (step {final_step})")
    return TrainingResult(config.run_dir, start_step, final_step, images_per_second, history)


def code_labels(config, examples):
    """The labels the code's head learns, or None when the run learns its categories unsupervised."""
    if not (config.code_labels and config.categorical_code):
        return None
    return check_code_labels(examples.labels, config.categorical_code)


def _extend(history, new_history):
    for name, values in new_history.items():
        history.setdefault(name, []).extend(float(value[0]) if hasattr(value, "__len__") else float(value) for value in values)


def weights_digest(network):
    """SHA-256 (16 hex digits) of all weights of `network`, BatchNorm moving statistics included."""
    digest = hashlib.sha256()
    for weights in network.get_weights():
        digest.update(np.ascontiguousarray(weights).tobytes())
    return digest.hexdigest()[:16]


def save_generator(generator, path):
    """Save the generator as a .keras file, atomically."""
    temporary = f"{path}.tmp.keras"
    generator.save(temporary)
    os.replace(temporary, path)


def write_progress_gif(samples_dir, epochs):
    frames = [sample_path(samples_dir, epoch) for epoch in range(1, epochs + 1)]
    frames = [frame for frame in frames if os.path.exists(frame)]
    if frames:
        image_grid.write_gif(os.path.join(samples_dir, "progress.gif"), frames)
