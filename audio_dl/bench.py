"""Benchmarks (speed targets live here, not in timed tests).

    python -m audio_dl.bench denoiser [--model saved_models/denoiser] [--seconds 60] [--repeats 5]

Measures, on real bundled speech + noise at 0 dB:
- streaming: the one-hop TFLite model (STFT, model, inverse STFT) driven by the Python reference
  loop on one thread: real-time factor = processing time / audio duration;
- whole file: the SavedModel on one long recording: audio seconds per second (x real time);
- chunked file path (`denoise_array`, what `python -m audio_dl.denoise` runs): x real time.
Medians of `--repeats` runs; prints a table and writes JSON.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from audio_dl import audio_io, cli, inference
from audio_dl.data import corpora
from audio_dl.streaming import STREAMING_TFLITE_NAME, StreamingDenoiser


def _test_recording(seconds: float, rate: int) -> np.ndarray:
    """Held-out real speech (armelle) looped to `seconds`, plus real noise (birds) at 0 dB."""
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
    stream = StreamingDenoiser(denoiser.path / STREAMING_TFLITE_NAME, num_threads=1)
    stream_seconds = _median_seconds(lambda: stream.denoise(audio[: rate * 10]), repeats)
    whole = _median_seconds(lambda: denoiser.run(audio[np.newaxis]), repeats)
    chunked = _median_seconds(lambda: inference.denoise_array(denoiser, audio), repeats)
    return {
        "model": str(denoiser.path), "audio_seconds": seconds, "repeats": repeats,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "streaming_tflite_real_time_factor": stream_seconds / 10.0,
        "streaming_tflite_microseconds_per_hop": 1e6 * stream_seconds / (10 * rate / stream.hop),
        "whole_file_saved_model_x_real_time": seconds / whole,
        "chunked_file_x_real_time": seconds / chunked,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.ArgumentParser(prog="python -m audio_dl.bench", description=__doc__,
                                formatter_class=cli.argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    denoiser = commands.add_parser("denoiser", help="streaming RTF and whole-file speed of an exported denoiser")
    denoiser.add_argument("--model", type=Path, default=Path("saved_models/denoiser"))
    denoiser.add_argument("--seconds", type=float, default=60.0, help="length of the test recording")
    denoiser.add_argument("--repeats", type=int, default=5)
    denoiser.add_argument("-o", "--output", type=Path, default=Path("bench_denoiser.json"))
    args = parser.parse_args(argv)
    if args.seconds < 10 or args.repeats < 1:
        raise cli.UsageError("--seconds must be >= 10 and --repeats >= 1")
    results = bench_denoiser(args.model, args.seconds, args.repeats)
    for key, value in results.items():
        print(f"{key:<42} {value:.4g}" if isinstance(value, float) else f"{key:<42} {value}")
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


main.prog = "python -m audio_dl.bench"

if __name__ == "__main__":
    raise SystemExit(cli.run_main(main))
