"""`QualityEvaluation`: `keras-dcgan evaluate`'s metrics during `fit`, every `eval_every` epochs.

Into the run dir (paths from `RunDir`):
    the metrics record    per epoch: step, training and wall seconds, losses; on evaluated epochs
                          also FCD, classifier score, class shares and KL, checkerboard (of the
                          weight average and of the last weights when the run keeps an average),
                          and once the real-data reference (train vs test) at the same sample count;
                          for a code that learns the labels, how often the weight average draws an
                          asked digit
    its plot              FCD and losses against epoch and against wall time
    TensorBoard scalars   the same, in the quality log
A resumed run appends to metrics.json, with its clocks continuing where they stopped.
Scoring time is excluded from `train_seconds` (not from `wall_seconds`).
"""

import time

import keras
import numpy as np

from keras_dcgan.atomic_write import atomic_path, write_json
from keras_dcgan.evaluation.asked_digits import measure_asked_digits
from keras_dcgan.evaluation.report import make_evaluator
from keras_dcgan.evaluation.metrics import QUALITY_SCALARS
from keras_dcgan.inference_generator import inference_generator, unit_range_images
from keras_dcgan.latents import latents_from_seeds


class QualityEvaluation(keras.callbacks.Callback):
    """Scores `config`'s generator every `options.eval_every` epochs into the files of `run` (a RunDir)."""

    def __init__(self, config, options, run):
        super().__init__()
        self.config = config
        self.options = options
        self.path = run.metrics_path
        self.plot_path = run.metrics_plot_path
        self.log_dir = run.log_dir("quality")
        self.content = run.read_metrics()
        self.evaluator = None
        self.latents = latents_from_seeds(range(options.eval_samples), config.latent_dim)

    def on_train_begin(self, logs=None):
        if self.evaluator is None:
            self.evaluator = make_evaluator(self.config.dataset, self.options.data_dir, self.options.cache_dir)
            real = self.evaluator.real_reference(min(self.options.eval_samples, len(self.evaluator.train)))
            self.content["real_train_vs_test"] = real.to_dict()
            self.content["classifier"] = {
                "key": self.evaluator.classifier.key, "test_accuracy": self.evaluator.classifier.test_accuracy
            }
        epochs = self.content["epochs"]
        self.train_seconds = epochs[-1]["train_seconds"] if epochs else 0.0
        self.wall_offset = epochs[-1]["wall_seconds"] if epochs else 0.0
        self.started = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.train_seconds += time.perf_counter() - self.epoch_started
        epoch += 1
        record = {
            "epoch": epoch,
            "step": int(self.model.global_step.numpy()),
            "train_seconds": round(self.train_seconds, 2),
            **{name: float(np.asarray(value).ravel()[0]) for name, value in (logs or {}).items()},
        }
        if epoch % self.options.eval_every == 0 or epoch == self.options.epochs:
            record.update(self._evaluate(epoch))
        record["wall_seconds"] = round(self.wall_offset + time.perf_counter() - self.started, 2)
        self.content["epochs"] = [old for old in self.content["epochs"] if old["epoch"] != epoch] + [record]
        write_json(self.path, self.content)
        write_plot(self.plot_path, self.content["epochs"])

    def _evaluate(self, epoch):
        import tensorflow as tf

        model, config = self.model, self.config
        # Plain local copies, outside the strategy: only the chief scores, so nothing here may
        # create distributed variables (under MultiWorkerMirroredStrategy their initial-value
        # broadcast would wait for workers that never join it).
        averaged = inference_generator(config, model.generator, model.generator_optimizer)
        raw = inference_generator(config, model.generator) if config.generator_ema else None
        results = {"": self._scores(averaged)}
        if raw is not None:
            results["raw_"] = self._scores(raw)
        asked = self._asked_digits(averaged)
        writer = tf.summary.create_file_writer(self.log_dir)
        with writer.as_default():
            for prefix, scores in results.items():
                for name in QUALITY_SCALARS:
                    tf.summary.scalar(f"{prefix}{name}", scores[name], step=epoch)
        writer.close()
        scores = {f"{prefix}{name}": value for prefix, scores in results.items() for name, value in scores.items()}
        return {**scores, **({"asked_digits": asked.to_dict()} if asked else {})}

    def _asked_digits(self, generator):
        if not self.config.digit_categories:
            return None
        return measure_asked_digits(
            lambda latents: unit_range_images(generator, latents), self.evaluator.classifier, self.config.latent_dim,
            self.config.categorical_code, self.options.eval_samples,
        )

    def _scores(self, generator):
        scores = self.evaluator.evaluate(unit_range_images(generator, self.latents)).to_dict()
        scores.pop("samples")
        return scores


def write_plot(path, records):
    """FCD and losses against epoch (left) and wall time (right), written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(2, 2, figsize=(10, 7), sharex="col")
    evaluated = [record for record in records if "fcd" in record]
    for column, clock in enumerate(("epoch", "wall_seconds")):
        fcd_axis, loss_axis = axes[0, column], axes[1, column]
        fcd_axis.plot([r[clock] for r in evaluated], [r["fcd"] for r in evaluated], "o-", label="FCD")
        if any("raw_fcd" in record for record in evaluated):
            fcd_axis.plot([r[clock] for r in evaluated], [r["raw_fcd"] for r in evaluated], "s--", label="FCD, last weights")
        fcd_axis.set_yscale("log")
        fcd_axis.set_ylabel("FCD (log scale)")
        fcd_axis.legend()
        fcd_axis.grid(True, alpha=0.3)
        for name in ("d_loss", "g_loss"):
            loss_axis.plot([r[clock] for r in records if name in r], [r[name] for r in records if name in r], ".-", label=name)
        loss_axis.set_ylabel("loss (epoch mean)")
        loss_axis.set_xlabel("epoch" if clock == "epoch" else "wall time (s)")
        loss_axis.legend()
        loss_axis.grid(True, alpha=0.3)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=80)
    pyplot.close(figure)
