"""Benchmarks (speed and memory targets live here, not in timed tests).

    python -m audio_dl.bench                       # all of them: one table, bench.json
    python -m audio_dl.bench denoiser [--model saved_models/denoiser] [--seconds 60] [--repeats 5]
    python -m audio_dl.bench melody [--model saved_models/melody] [--tunes 20]
    python -m audio_dl.bench input [--batches 200] [--loop-examples 60] [--train-steps 30] [--input-preset large]
    python -m audio_dl.bench context [--batch 32] [--context-seconds 4]
    python -m audio_dl.bench scale [--files 1000,100000] [--file-seconds 0.25]

denoiser, on real bundled speech + noise at 0 dB:
- streaming: the one-hop TFLite model (STFT, model, inverse STFT) driven by the Python reference
  loop on one thread: real-time factor = processing time / audio duration; float32 weights and,
  where the export has it, int8 weights;
- whole file: the SavedModel on one long recording: audio seconds per second (x real time);
- chunked file path (`denoise_array`, what `python -m audio_dl.denoise` runs): x real time.
Medians of `--repeats` runs.

melody: generated notes per second on this CPU with the stateful one-step model (the export's
`generate` graph loop; and the one-step TFLite model driven from Python), against re-feeding the
whole sequence to the sequence model for every new token (what a model without state must do).

input, context, scale: see audio_dl/bench_data.py. Each command prints a table and writes JSON.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from audio_dl import atomic, audio_io, bench_data, cli, inference
from audio_dl.config import DenoiserConfig
from audio_dl.errors import UsageError
from audio_dl.data import corpora
from audio_dl.streaming import STREAMING_INT8_TFLITE_NAME, STREAMING_TFLITE_NAME, StreamingDenoiser


def _test_recording(seconds: float, rate: int) -> np.ndarray:
    """Real speech (armelle, a training voice of the bundled corpus: this is about speed) looped to
    `seconds`, plus real noise (birds) at 0 dB."""
    root = corpora.bundled_denoiser_root()
    speech = np.concatenate([audio_io.read_audio(p, rate) for p in sorted((root / "speech" / "armelle").glob("*.flac"))])
    noise = audio_io.read_audio(root / "noise" / "birds.flac", rate)
    length = int(seconds * rate)
    speech, noise = np.resize(speech, length), np.resize(noise, length)
    return (speech + noise * np.sqrt(np.mean(speech**2) / np.mean(noise**2))).astype(np.float32)


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up (graph tracing, delegate setup)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def bench_denoiser(model_path: Path, seconds: float, repeats: int) -> dict:
    denoiser = inference.load_denoiser(model_path)
    rate = denoiser.sample_rate
    audio = _test_recording(seconds, rate)
    streaming = {}
    for prefix, name in (("streaming_tflite", STREAMING_TFLITE_NAME),
                         ("streaming_int8_tflite", STREAMING_INT8_TFLITE_NAME)):
        if (denoiser.path / name).is_file():  # exports before the int8 one was added lack it
            stream = StreamingDenoiser(denoiser.path / name, num_threads=1)
            stream_seconds = _median_seconds(lambda: stream.denoise(audio[: rate * 10]), repeats)  # noqa: B023
            streaming[f"{prefix}_real_time_factor"] = stream_seconds / 10.0
            streaming[f"{prefix}_microseconds_per_hop"] = 1e6 * stream_seconds / (10 * rate / stream.hop)
    whole = _median_seconds(lambda: denoiser.run(audio[np.newaxis]), repeats)
    chunked = _median_seconds(lambda: inference.denoise_array(denoiser, audio), repeats)
    return {
        "denoiser_model": str(denoiser.path), "audio_seconds": seconds, "repeats": repeats, **streaming,
        "whole_file_saved_model_x_real_time": seconds / whole,
        "chunked_file_x_real_time": seconds / chunked,
    }


def bench_melody(model_path: Path, tunes: int) -> dict:
    from audio_dl import midi_io  # noqa: PLC0415 - TensorFlow only for this benchmark
    from audio_dl.compose import MelodyGenerator, export_scorer, load_melody_export
    from audio_dl.export_melody import ONE_STEP_TFLITE_NAME
    from audio_dl.litert import signature_runner
    from audio_dl.models.melody import state_names

    loaded, cfg, version = load_melody_export(model_path)
    generator = MelodyGenerator.from_export(version)
    generator.continue_tune([], seed=0, max_steps=64)  # warm-up
    started, notes, tokens = time.perf_counter(), 0, 0
    for seed in range(tunes):
        result = generator.continue_tune([], seed=seed, max_steps=cfg.max_steps)
        notes, tokens = notes + len(result.generated), tokens + len(result.tokens)
    stateful = time.perf_counter() - started

    runner = signature_runner(version / ONE_STEP_TFLITE_NAME)
    states = {name: np.zeros((1, cfg.lstm_units), np.float32) for name in state_names(cfg)}
    token, lite_tokens = midi_io.START, 2000
    started = time.perf_counter()
    for _ in range(lite_tokens):  # greedy walk: the cost per step is what matters here
        out = runner(token=np.array([token], np.int32), **states)
        states = {name: out[f"next_{name}"] for name in states}
        token = int(np.argmax(out["logits"][0, midi_io.FIRST_NOTE_TOKEN:])) + midi_io.FIRST_NOTE_TOKEN
    lite = time.perf_counter() - started

    score, sequence, refeed_tokens = export_scorer(loaded), [midi_io.START], 300
    started = time.perf_counter()
    for _ in range(refeed_tokens):
        logits = score(np.array([sequence], np.int32))[0, -1]
        sequence.append(int(np.argmax(logits[midi_io.FIRST_NOTE_TOKEN:])) + midi_io.FIRST_NOTE_TOKEN)
    refeed = time.perf_counter() - started
    notes_per_token = notes / tokens
    return {
        "melody_model": str(version), "tunes": tunes, "generated_notes": notes, "generated_tokens": tokens,
        "stateful_graph_notes_per_second": notes / stateful,
        "stateful_graph_tokens_per_second": tokens / stateful,
        "stateful_tflite_python_loop_tokens_per_second": lite_tokens / lite,
        "refeed_sequence_tokens_per_second_at_300": refeed_tokens / refeed,
        "refeed_sequence_notes_per_second_at_300": notes_per_token * refeed_tokens / refeed,
    }


def _report(results: dict, output: Path) -> None:
    for key, value in results.items():
        print(f"{key:<46} {value:.4g}" if isinstance(value, float) else f"{key:<46} {value}")
    atomic.write_text(output, json.dumps(results, indent=2) + "\n")
    print(f"wrote {output}")


def _denoiser_options(sub, flag: str = "--model") -> None:
    sub.add_argument(flag, dest="model", type=cli.given_path, default=cli.shipped_model("denoiser"),
                     help="denoiser export folder, TF Serving base path or training run folder; its "
                          "streaming .tflite files are timed too (default: %(default)s)")
    sub.add_argument("--seconds", type=float, default=60.0,
                     help="length of the test recording, 10 to 3600 (default: %(default)s)")
    sub.add_argument("--repeats", type=int, default=5, help="timed runs; the median is reported (default: %(default)s)")


def _melody_options(sub, flag: str = "--model") -> None:
    sub.add_argument(flag, dest="melody_model", type=cli.given_path, default=cli.shipped_model("melody"),
                     help="melody export, base path or training run folder (default: %(default)s)")
    sub.add_argument("--tunes", type=int, default=20, help="tunes generated from scratch (default: %(default)s)")


def _input_options(sub) -> None:
    sub.add_argument("--batches", type=int, default=200,
                     help="tf.data batches timed (a second or more each; default: %(default)s)")
    sub.add_argument("--loop-examples", type=int, default=60,
                     help="examples of each librosa loop timed (default: %(default)s)")
    sub.add_argument("--train-steps", type=int, default=30,
                     help="training steps for the input-wait share (default: %(default)s)")
    sub.add_argument("--input-preset", choices=("default", "large"), default="default",
                     help="denoiser preset whose corpus is read (large: build data/denoiser first)")


def _context_options(sub) -> None:
    sub.add_argument("--batch", type=int, default=32, help="examples per batch (default: %(default)s)")
    sub.add_argument("--context-seconds", type=float, default=4.0,
                     help="seconds of audio per example (default: %(default)s)")


def _scale_options(sub) -> None:
    sub.add_argument("--files", default="1000,100000",
                     help="corpus sizes in files, comma-separated (default: %(default)s)")
    sub.add_argument("--file-seconds", type=float, default=0.25,
                     help="length of each synthetic file (default: %(default)s)")
    sub.add_argument("--scale-cache", type=cli.given_path,
                     help="where the synthetic corpora are kept (default: a temp folder)")
    sub.add_argument("--scale-batch", type=int, default=64, help="batch size of the timed reads (default: %(default)s)")


COMMANDS = ("all", "denoiser", "melody", "input", "context", "scale", "scale-run")


def _check_arguments(args) -> list[int]:
    """UsageError for a bad number or a missing model of any benchmark that args.command runs,
    before the first one runs; the `scale` sizes (an empty list when it does not run)."""

    def numbers(name: str, *values: float) -> None:
        if any(not (math.isfinite(v) and v > 0) for v in values):
            raise UsageError(f"{name} must be a finite number > 0")

    sizes: list[int] = []
    if args.command in ("denoiser", "all"):
        numbers("--repeats", args.repeats)
        if not 10 <= args.seconds <= 3600:
            raise UsageError(f"--seconds must be in [10, 3600] (got {args.seconds:g})")
        if not args.model.exists():
            raise UsageError(f"model not found: {args.model}")
        if args.model.is_file() and args.model.name != "saved_model.pb":  # the whole-file row needs any length
            raise UsageError(f"{args.model} is a file; give the export folder that holds it "
                             "(the benchmark times its SavedModel and its streaming .tflite files)")
    if args.command in ("melody", "all"):
        from audio_dl.compose import resolve_export  # noqa: PLC0415 - as bench_melody imports it

        numbers("--tunes", args.tunes)
        resolve_export(args.melody_model)
    if args.command in ("input", "all"):
        numbers("--batches, --loop-examples and --train-steps", args.batches, args.loop_examples, args.train_steps)
    if args.command in ("context", "all"):
        numbers("--batch and --context-seconds", args.batch, args.context_seconds)
        hop_seconds = DenoiserConfig.hop_length / DenoiserConfig.sample_rate
        if args.context_seconds < hop_seconds:
            raise UsageError(f"--context-seconds must be at least one hop ({hop_seconds:g} s)")
    if args.command in ("scale", "all"):
        try:
            sizes = sorted({int(n) for n in args.files.split(",")})
        except ValueError:
            raise UsageError(f"--files takes comma-separated numbers of files, got {args.files!r}") from None
        numbers("--files, --file-seconds and --scale-batch", *sizes, args.file_seconds, args.scale_batch)
    return sizes


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.ArgumentParser(prog="python -m audio_dl.bench", description=__doc__,
                                formatter_class=cli.argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command")
    every = commands.add_parser("all", help="every benchmark below (the default): one table, bench.json")
    for options in (_input_options, _context_options, _scale_options):
        options(every)
    _denoiser_options(every)
    _melody_options(every, "--melody-model")
    for name, options, text in (
            ("denoiser", _denoiser_options, "streaming RTF and whole-file speed of an exported denoiser"),
            ("melody", _melody_options, "generated notes per second: stateful vs re-feeding"),
            ("input", _input_options, "tf.data pipeline vs per-file librosa loops; input wait"),
            ("context", _context_options, "8-frame context: one causal conv vs materialised copies"),
            ("scale", _scale_options, "peak RSS of prepare + one epoch, small vs large corpus")):
        options(commands.add_parser(name, help=text))
    run = commands.add_parser("scale-run", help="(internal) one size of `scale`, in a fresh process")
    run.add_argument("source", type=cli.given_path)
    run.add_argument("work", type=cli.given_path)
    run.add_argument("--batch-size", type=int, default=64)
    for sub in commands.choices.values():
        if sub.prog.split()[-1] != "scale-run":
            name = sub.prog.split()[-1]
            sub.add_argument("-o", "--output", type=cli.given_path,
                             default=Path("bench.json" if name == "all" else f"bench_{name}.json"),
                             help="JSON file for the results (default: %(default)s)")
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in (*COMMANDS, "-h", "--help"):  # a command comes first; a value may be a command's name
        argv.insert(0, "all")
    args = parser.parse_args(argv)
    if args.command == "scale-run":
        print(json.dumps(bench_data.scale_run(args.source, args.work, args.batch_size)))
        return 0

    sizes = _check_arguments(args)
    output = cli.output_file(args.output)
    results: dict = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"}
    if args.command in ("denoiser", "all"):
        results.update(bench_denoiser(args.model, args.seconds, args.repeats))
    if args.command in ("melody", "all"):
        results.update(bench_melody(args.melody_model, args.tunes))
    if args.command in ("input", "all"):
        results.update(bench_data.bench_input(args.batches, args.loop_examples, args.train_steps, args.input_preset))
    if args.command in ("context", "all"):
        results.update(bench_data.bench_context(args.batch, args.context_seconds, repeats=10))
    if args.command in ("scale", "all"):
        results.update(bench_data.bench_scale(sizes, args.file_seconds, args.scale_batch, args.scale_cache))
    _report(results, output)
    return 0


main.prog = "python -m audio_dl.bench"

if __name__ == "__main__":
    raise SystemExit(cli.run_main(main))
