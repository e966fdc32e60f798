"""Input-pipeline, context-layer and corpus-scale benchmarks (run by `python -m audio_dl.bench`).

- input: the tf.data training pipeline (corpus decoded once into memory, then crop, augment, mix,
  batch in graph ops) in examples per second against per-file Python loops with librosa that mix
  without augmenting: one loading whole files (as the MATLAB demo reads its files), one loading
  only the crop (offset/duration); the same pipeline decoding every crop from its file, and
  reading prepared TFRecords; and the share of each training step spent waiting for input,
  measured around `next(iterator)` in a loop of `train_on_batch` on the default model.
- context: the demo's 8-frame context as one causal convolution over the spectrogram (this
  project) against materialised copies (every frame's 8 x 129 predictor image, as the MATLAB demo
  builds them), same weights: time per forward + backward pass and the bytes of the layer's input.
- scale: synthetic corpora of N short files: `datasets prepare` + one training epoch (one pass
  over the files) from the shards, each size in a fresh process; the peak RSS (VmHWM) of that
  process and of prepare's worker processes.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from audio_dl.config import DenoiserConfig, make_config


def _pipeline_rate(dataset, batches: int, batch_size: int) -> float:
    iterator = iter(dataset)
    for _ in range(3):  # warm-up: tracing, thread pools, prefetch
        next(iterator)
    started = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size / (time.perf_counter() - started)


def _librosa_loop_rate(corpus, cfg: DenoiserConfig, examples: int, whole_files: bool) -> float:
    """Examples per second of a plain Python loop: librosa-load a speech and a noise file
    (whole, or only a crop via offset/duration), resample, crop, mix at a random SNR."""
    import librosa  # noqa: PLC0415

    rng = np.random.default_rng(0)
    seconds = cfg.crop_samples / cfg.sample_rate

    def read_crop(infos):
        info = infos[rng.integers(len(infos))]
        if whole_files:
            audio, _ = librosa.load(info.path, sr=cfg.sample_rate)
            start = rng.integers(max(1, audio.size - cfg.crop_samples))
            return np.resize(audio[start:], cfg.crop_samples)
        offset = rng.uniform(0, max(0.0, info.seconds - seconds))
        audio, _ = librosa.load(info.path, sr=cfg.sample_rate, offset=offset, duration=seconds)
        return np.resize(audio, cfg.crop_samples)

    def example():
        clean, noise = read_crop(corpus.train.speech), read_crop(corpus.train.noise)
        snr = rng.uniform(*cfg.snr_db)
        return clean + noise * np.sqrt(np.mean(clean**2) / (np.mean(noise**2) + 1e-10) / 10 ** (snr / 10))

    for _ in range(3):  # warm-up: librosa's and soxr's first calls
        example()
    started = time.perf_counter()
    for _ in range(examples):
        example()
    return examples / (time.perf_counter() - started)


def bench_input(batches: int, loop_examples: int, train_steps: int, preset: str = "default") -> dict:
    """The input rows of the benchmark on the corpus of a denoiser preset (default: the bundled
    recordings; large: the package-built corpus, whose noise recordings are long).

    The pipeline as training runs it decodes the corpus once into memory (cfg.preload_mb) and
    crops in graph ops; the same pipeline with preload_mb=0 decodes each crop from its file, and
    from prepared TFRecords reads resampled PCM shards."""
    import dataclasses  # noqa: PLC0415

    from audio_dl.data import corpora, records, speech  # noqa: PLC0415 - TensorFlow only for this benchmark
    from audio_dl.training import compile_denoiser

    cfg = make_config(DenoiserConfig, preset)
    corpus = speech.load_corpus(cfg)
    started = time.perf_counter()
    dataset = speech.training_dataset(corpus.train, cfg)  # decodes the corpus into memory
    preload_seconds = time.perf_counter() - started
    augmented = _pipeline_rate(dataset, batches, cfg.batch_size)
    plain = _pipeline_rate(speech.training_dataset(corpus.train, dataclasses.replace(cfg, augment=False)),
                           batches, cfg.batch_size)
    from_files_cfg = dataclasses.replace(cfg, preload_mb=0.0)
    augmented_files = _pipeline_rate(speech.training_dataset(corpus.train, from_files_cfg), batches, cfg.batch_size)
    plain_files = _pipeline_rate(
        speech.training_dataset(corpus.train, dataclasses.replace(from_files_cfg, augment=False)), batches, cfg.batch_size)
    with tempfile.TemporaryDirectory() as prepared:  # the same speech as sharded TFRecords
        records.prepare(cfg.speech[0] if preset != "default" else corpora.bundled_denoiser_root() / "speech",
                        prepared, cfg.sample_rate, files_per_shard=200)
        record_cfg = dataclasses.replace(cfg, speech=(prepared,), augment=False)
        from_records = _pipeline_rate(speech.training_dataset(speech.load_corpus(record_cfg).train, record_cfg),
                                      batches, cfg.batch_size)
    whole_files = _librosa_loop_rate(corpus, cfg, loop_examples, whole_files=True)
    crops = _librosa_loop_rate(corpus, cfg, loop_examples, whole_files=False)

    model = compile_denoiser(cfg, list(dataset.take(1)))
    iterator = iter(dataset)
    for _ in range(3):
        model.train_on_batch(*next(iterator))
    waits, steps = [], []
    for _ in range(train_steps):
        started = time.perf_counter()
        x, y = next(iterator)
        waited = time.perf_counter()
        model.train_on_batch(x, y)
        waits.append(waited - started)
        steps.append(time.perf_counter() - started)
    return {
        "input_corpus": f"preset {preset}: {corpus.train.speech_files} speech files "
                        f"({corpus.train.speech_seconds / 60:.0f} min), {len(corpus.train.noise)} noise "
                        f"recordings (median {statistics.median(i.seconds for i in corpus.train.noise):.0f} s)",
        "input_batch_size": cfg.batch_size,
        "input_preload_seconds": preload_seconds,
        "input_tf_data_augmented_examples_per_second": augmented,
        "input_tf_data_plain_examples_per_second": plain,
        "input_tf_data_files_augmented_examples_per_second": augmented_files,
        "input_tf_data_files_plain_examples_per_second": plain_files,
        "input_tf_data_records_plain_examples_per_second": from_records,
        "input_librosa_whole_file_loop_examples_per_second": whole_files,
        "input_librosa_crop_loop_examples_per_second": crops,
        "input_tf_data_augmented_over_whole_file_loop": augmented / whole_files,
        "input_tf_data_plain_over_whole_file_loop": plain / whole_files,
        "input_tf_data_plain_over_crop_loop": plain / crops,
        "input_tf_data_files_plain_over_crop_loop": plain_files / crops,
        "input_tf_data_records_plain_over_crop_loop": from_records / crops,
        "input_wait_share_of_step_time": sum(waits) / sum(steps),
        "input_median_step_ms": 1e3 * statistics.median(steps),
    }


def bench_context(batch: int, seconds: float, repeats: int) -> dict:
    import tensorflow as tf  # noqa: PLC0415

    from audio_dl import layers as L

    cfg = make_config(DenoiserConfig, "default")
    frames, bins, context = int(seconds * cfg.sample_rate / cfg.hop_length), cfg.n_bins, cfg.context_frames
    spectrogram = tf.random.stateless_uniform([batch, frames, bins, 1], [0, 1])
    layer = L.CausalContextConv(18, context, 9, name="context")  # the demo's first conv: 8 frames x 9 bins
    layer.build(spectrogram.shape)
    kernel, bias = layer.kernel, layer.bias  # [8, 9, 1, 18], [18]

    def in_graph(x):
        return layer(x)

    def materialised(x):
        padded = tf.pad(x, [[0, 0], [context - 1, 0], [0, 0], [0, 0]])
        images = tf.signal.frame(padded, context, 1, axis=1)  # [B, T, 8, F, 1]: 8 copies of every frame
        images = tf.reshape(images, [-1, context, bins, 1])
        y = tf.nn.conv2d(images, kernel, 1, [[0, 0], [0, 0], [4, 4], [0, 0]]) + bias  # [B*T, 1, F, 18]
        return tf.reshape(y, [batch, frames, bins, 18])

    np.testing.assert_allclose(in_graph(spectrogram).numpy(), materialised(spectrogram).numpy(), atol=1e-4)

    def timed(fn) -> float:
        @tf.function
        def step(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(fn(x))
            return tape.gradient(loss, [x, kernel, bias])

        step(spectrogram)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            step(spectrogram)
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    direct, copies = timed(in_graph), timed(materialised)
    return {
        "context_batch": f"{batch} x {seconds:g} s ({frames} frames x {bins} bins)",
        "context_layer_ms": 1e3 * direct,
        "context_materialised_copies_ms": 1e3 * copies,
        "context_time_ratio_copies_over_layer": copies / direct,
        "context_layer_input_mb": spectrogram.numpy().nbytes / 2**20,
        "context_materialised_input_mb": context * spectrogram.numpy().nbytes / 2**20,
    }


def synthetic_corpus(root: Path, files: int, seconds: float, speakers: int = 100, rate: int = 16000) -> Path:
    """`files` WAVs of `seconds` (harmonic tones in noise) in `speakers` folders; reused if present."""
    import soundfile  # noqa: PLC0415

    done = root / f".complete-{files}x{seconds:g}s"
    if done.is_file():
        return root
    rng = np.random.default_rng(files)
    t = np.arange(int(seconds * rate)) / rate
    for i in range(files):
        folder = root / f"speaker{i % speakers:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        f0 = rng.uniform(90, 250)
        tone = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6))
        audio = 0.1 * tone * np.hanning(t.size) + 0.01 * rng.standard_normal(t.size)
        soundfile.write(folder / f"utt{i:06d}.wav", audio.astype(np.float32), rate, subtype="PCM_16")
    done.touch()
    return root


def scale_run(source: Path, work: Path, batch_size: int) -> dict:
    """One size of the scale benchmark, in this (fresh) process: prepare + one epoch. Peak RSS in MiB."""
    from audio_dl.data import corpora, records  # noqa: PLC0415
    from audio_dl.training import train_denoiser

    started = time.perf_counter()
    manifest = records.prepare(source, work / "prepared", sample_rate=8000, files_per_shard=1000)
    prepared = time.perf_counter() - started
    steps = max(1, manifest["files"] // batch_size)
    cfg = make_config(DenoiserConfig, "default", overrides=[
        f"speech={work / 'prepared'}", f"noise={corpora.bundled_denoiser_root() / 'noise'}", "crop_seconds=0.25",
        f"batch_size={batch_size}", f"steps_per_epoch={steps}", "epochs=1", "val_examples=16", "augment=false"])
    started = time.perf_counter()
    train_denoiser(cfg, work / "run", verbose=0)
    trained = time.perf_counter() - started
    return {"files": manifest["files"], "shards": manifest["shards"], "prepare_seconds": prepared,
            "epoch_steps": steps, "train_and_export_seconds": trained,
            "peak_rss_mib": records.peak_rss_mib(), "peak_rss_prepare_workers_mib": manifest["workers_peak_rss_mib"]}


def bench_scale(sizes: list[int], seconds: float, batch_size: int, cache: Path | None) -> dict:
    results = {}
    base = cache or Path(tempfile.gettempdir()) / "audio_dl-scale"
    for files in sizes:
        source = synthetic_corpus(base / f"source-{files}x{seconds:g}s", files, seconds)
        with tempfile.TemporaryDirectory(dir=base) as work:
            out = subprocess.run([sys.executable, "-m", "audio_dl.bench", "scale-run", str(source), work,
                                  "--batch-size", str(batch_size)], capture_output=True, text=True)
            if out.returncode != 0:
                raise RuntimeError(f"scale run of {files} files failed:\n{out.stderr[-3000:]}")
            results[files] = json.loads(out.stdout.strip().splitlines()[-1])
    small, large = results[min(sizes)], results[max(sizes)]
    flat = {f"scale_{n}_files_{k}": v for n, r in results.items() for k, v in r.items() if k != "files"}
    flat["scale_peak_rss_growth"] = large["peak_rss_mib"] / small["peak_rss_mib"] - 1
    flat["scale_peak_rss_workers_growth"] = (large["peak_rss_prepare_workers_mib"]
                                             / small["peak_rss_prepare_workers_mib"] - 1)
    return flat
