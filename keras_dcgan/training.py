"""`train(config, options)`: the whole `keras-dcgan fit` job, resumable.

Writes the run directory described in run_dir.py. Rerunning the same command on the same
run dir continues from the furthest saved state, in the middle of an epoch if that is where
it stopped; a different experiment (`TrainConfig`) is refused, different `RunOptions` are not.
"""

import hashlib
import shutil
import time
from dataclasses import dataclass

import keras
import numpy as np

from keras_dcgan import image_grid
from keras_dcgan.callbacks import CheckpointSaver, DivergenceGuard, LearningRates, SampleGrids, ScalarSummaries
from keras_dcgan.checkpoints import TrainingCheckpoints
from keras_dcgan.data import check_code_labels, load_images, steps_per_epoch, training_dataset
from keras_dcgan.gan import DCGAN
from keras_dcgan.inference_generator import weight_average_momentum
from keras_dcgan.learning_rate import learning_rate
from keras_dcgan.networks import build_discriminator, build_generator
from keras_dcgan.precision import resolve_precision
from keras_dcgan.run_dir import RunDir
from keras_dcgan.strategy import check_workers_agree, describe, finish_together, is_chief, make_strategy, scratch_dir


@dataclass(frozen=True)
class TrainingResult:
    run_dir: str
    start_step: int
    final_step: int
    images_per_second: float | None
    history: dict


def build_model(config, total_steps=None, fused_batch_norm=True):
    """The compiled DCGAN of `config`; call inside the strategy's scope.

    `total_steps`, the run's length, is needed when the learning rates decay
    (`config.learning_rate_decay`). `fused_batch_norm=False` trains with Keras' own
    BatchNormalization (for benchmarks).
    """
    if config.learning_rate_decay and not total_steps:
        raise ValueError("learning_rate_decay needs the run's total_steps")
    generator = build_generator(config, fused_batch_norm=fused_batch_norm)
    discriminator = build_discriminator(config, fused_batch_norm=fused_batch_norm)
    model = DCGAN(
        generator, discriminator, config.latent_dim, seed=config.seed, categorical_code=config.categorical_code,
        conditioning=config.code_conditioning, gan_loss=config.gan_loss,
    )
    model.compile(
        generator_optimizer=keras.optimizers.Adam(
            learning_rate(config.generator_lr, config.learning_rate_decay, total_steps), beta_1=config.beta1,
            # The moving average lives in the optimiser, so checkpoints save and resume it.
            use_ema=config.generator_ema > 0, ema_momentum=weight_average_momentum(config.generator_ema, total_steps),
        ),
        discriminator_optimizer=keras.optimizers.Adam(
            learning_rate(config.discriminator_lr, config.learning_rate_decay, total_steps), beta_1=config.beta1
        ),
    )
    return model


def check_run_dir(config, run):
    """True if `run` (a RunDir) holds this experiment already; ValueError if it holds another one."""
    run.check_writable()
    if not run.is_run():
        return False
    conflicts = config.conflicts_with(run.read_config())
    if conflicts:
        described = "; ".join(f"{name}: run dir has {old!r}, asked for {new!r}" for name, (old, new) in conflicts.items())
        raise ValueError(
            f"{run.path} holds a run with a different configuration ({described}). "
            "Use the same flags to resume it, or a new --run-dir to start another run."
        )
    return True


def train(config, options, verbose="auto"):
    """Train the experiment `config` where and as `options` say; returns a TrainingResult.

    Training sets Keras' global dtype policy to the run's precision; the caller gets its own back.
    """
    run = RunDir(options.run_dir)
    resuming = check_run_dir(config, run)
    chief = is_chief()
    # Other workers take part in every save (they hold distributed variables) but write to scratch.
    output = run if chief else RunDir(scratch_dir(run.path))
    if not chief:
        shutil.rmtree(output.path, ignore_errors=True)  # left by this worker if it was killed
    policy = keras.config.dtype_policy()
    try:
        return _train(config, options, run, output, resuming, verbose)
    finally:
        keras.config.set_dtype_policy(policy)
        if not chief:
            shutil.rmtree(output.path, ignore_errors=True)


def _train(config, options, run, output, resuming, verbose):
    """`run` is the run dir read from; `output` is where this worker writes (the run dir on the chief)."""
    examples = load_images(config, "train", data_dir=options.data_dir)
    labels = code_labels(config, examples)  # checked before anything is written
    strategy = _start_strategy(config, options.strategy)
    output.create()
    if output is run and not resuming:  # only once the run can start: a refused run leaves no config.json
        run.write_config(config)
    steps = steps_per_epoch(len(examples), config.batch_size)
    model, checkpoints, start_step = _build_or_resume(config, strategy, run, output, steps, options.epochs)
    callbacks = _callbacks(config, options, checkpoints, output, chief=output is run)
    dataset = training_dataset(examples.images, config.batch_size, config.seed, labels=labels)

    started = time.perf_counter()
    history = _fit(model, dataset, callbacks, start_step, steps, options.epochs, verbose)
    seconds = time.perf_counter() - started

    final_step = int(model.global_step.numpy())
    generator = _save_final_artefacts(config, model, output, write_gif=output is run, epochs=options.epochs)
    trained_images = (final_step - start_step) * config.batch_size
    images_per_second = trained_images / seconds if trained_images else None
    if images_per_second:
        print(f"Trained {final_step - start_step} steps ({trained_images} images) in {seconds:.1f} s: "
              f"{images_per_second:.0f} images/s. Generator: {run.generator_path}")
    finish_together(strategy, final_step)
    # Every worker prints it (the generator as saved): equal digests show the workers ended identical.
    print(f"Weights sha256: generator {weights_digest(generator)}, "
          f"discriminator {weights_digest(model.discriminator)} (step {final_step})")
    return TrainingResult(run.path, start_step, final_step, images_per_second, history)


def _start_strategy(config, strategy_name):
    """Set the precision policy and make the tf.distribute strategy, checked to split the batch evenly."""
    policy, why = resolve_precision(config.precision)
    keras.mixed_precision.set_dtype_policy(policy)
    strategy = make_strategy(strategy_name)
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise ValueError(
            f"batch_size {config.batch_size} is the global batch and must split evenly over the {replicas} replicas"
        )
    print(f"Training with {describe(strategy)}; global batch {config.batch_size}, "
          f"{config.batch_size // replicas} per replica.")
    print(f"Precision {policy} ({why}).")
    return strategy


def _build_or_resume(config, strategy, run, output, steps, epochs):
    """(model, checkpoints to save to, start step): the model restored from the run's furthest saved state, if any."""
    with strategy.scope():
        model = build_model(config, total_steps=steps * epochs)
    checkpoints = TrainingCheckpoints(run.checkpoints_dir, model, steps)
    saved = checkpoints.latest()
    start_step = checkpoints.restore(saved.path) if saved else 0
    check_workers_agree(strategy, start_step, run.path)
    if saved:
        print(f"Resuming {run.path} from {saved.path} (step {start_step} of {steps * epochs}).")
    if output is not run:
        checkpoints = TrainingCheckpoints(output.checkpoints_dir, model, steps)
    return model, checkpoints, start_step


def _callbacks(config, options, checkpoints, output, chief):
    callbacks = [
        DivergenceGuard(checkpoints.directory),  # first: nothing may be saved after a diverged step
        CheckpointSaver(checkpoints, options.backup_every_steps),
        SampleGrids(output, config.latent_dim, config.seed, write=chief),
    ]
    if config.learning_rate_decay:
        callbacks.append(LearningRates())  # before the callbacks that record the logs
    if chief:
        callbacks.append(ScalarSummaries(output.log_dir("train")))
        if options.eval_every:
            from keras_dcgan.evaluation.during_training import QualityEvaluation  # the classifier only when asked

            callbacks.append(QualityEvaluation(config, options, output))
    return callbacks


def _fit(model, dataset, callbacks, start_step, steps, epochs, verbose):
    """Train from `start_step` to the end of epoch `epochs`; returns the history of every logged value."""
    history = {}
    epoch, done_in_epoch = divmod(start_step, steps)
    if done_in_epoch:  # killed mid-epoch: finish that epoch's remaining steps first
        print(f"Finishing epoch {epoch + 1}: {steps - done_in_epoch} of its {steps} steps are left.")
        fitted = model.fit(
            dataset, initial_epoch=epoch, epochs=epoch + 1, steps_per_epoch=steps - done_in_epoch,
            callbacks=callbacks, verbose=verbose, shuffle=False,
        )
        _extend(history, fitted.history)
        epoch += 1
    if epoch < epochs:
        fitted = model.fit(
            dataset, initial_epoch=epoch, epochs=epochs, steps_per_epoch=steps,
            callbacks=callbacks, verbose=verbose, shuffle=False,
        )
        _extend(history, fitted.history)
    return history


def _save_final_artefacts(config, model, output, write_gif, epochs):
    """Save generator.keras (the weight average in float32, if the run keeps one) and the progress GIF; returns the generator."""
    generator = model.generator
    if config.generator_ema:
        from keras_dcgan.inference_generator import inference_generator

        # The weight average, in float32, with BatchNorm statistics re-estimated for it.
        generator = inference_generator(config, model.generator, model.generator_optimizer)
    output.save_generator(generator)
    frames = output.sample_paths(epochs)
    if write_gif and frames:
        image_grid.write_gif(output.progress_gif_path, frames)
    return generator


def code_labels(config, examples):
    """The labels the code's head learns, or None when the run learns its categories unsupervised."""
    if not config.digit_categories:
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
