"""Reference streaming loop: the one-hop TFLite denoiser run block by block, as a device would.

    stream = StreamingDenoiser("saved_models/denoiser/4/denoiser_streaming.tflite")
    for block in blocks_of_64_samples:        # float32 [64] at 8 kHz
        out = stream.process(block)           # float32 [64], delayed by stream.latency samples

The model carries its state explicitly (last input samples, the cached features of past frames,
overlap-add tail and, for a GRU model, its hidden state); this loop feeds each step's
next_<state> outputs back as the <state> inputs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from audio_dl import audio_io
from audio_dl.config import DenoiserConfig, load_config
from audio_dl.errors import UsageError
from audio_dl.litert import FixedShapeRunner

STREAMING_TFLITE_NAME = "denoiser_streaming.tflite"
STREAMING_INT8_TFLITE_NAME = "denoiser_streaming_int8.tflite"  # int8 weights: fewer bytes to read per hop


class StreamingDenoiser:
    """Runs a streaming denoiser TFLite model under ai_edge_litert, one hop per call."""

    def __init__(self, model_path: str | Path, num_threads: int = 1):
        path = Path(model_path)
        if not path.is_file():
            raise UsageError(f"model not found: {path}")
        self.cfg = load_config(DenoiserConfig, path.parent / "config.json")
        try:
            self._runner = FixedShapeRunner(path, num_threads)
            details, outputs = self._runner.input_details, self._runner.output_details
            self.state_shapes = {name: tuple(d["shape"]) for name, d in details.items() if name != "samples"}
            self.hop = int(details["samples"]["shape"][1])
            ok = "denoised" in outputs and all(f"next_{name}" in outputs for name in self.state_shapes)
        except Exception:  # noqa: BLE001 - anything else is not our streaming model
            ok = False
        if not ok:
            raise UsageError(f"{path} is not a streaming denoiser (needs samples + states -> denoised + next_states)")
        self.reset()

    @property
    def latency(self) -> int:
        """Output delay in samples (frame_length - hop, plus the model's lookahead)."""
        return self.cfg.latency_samples

    def reset(self) -> None:
        """Start a new recording: all state is silence."""
        self._state = {name: np.zeros(shape, np.float32) for name, shape in self.state_shapes.items()}

    def process(self, block: np.ndarray) -> np.ndarray:
        """[hop] float32 in -> [hop] float32 out."""
        samples = np.asarray(block, np.float32)
        if samples.shape not in ((self.hop,), (1, self.hop)):
            raise ValueError(f"process takes one hop of {self.hop} samples, not shape {samples.shape}")
        outputs = self._runner(samples=samples.reshape(1, self.hop), **self._state)
        self._state = {name: outputs[f"next_{name}"] for name in self.state_shapes}  # fresh arrays already
        return outputs["denoised"][0]

    def denoise(self, waveform: np.ndarray) -> np.ndarray:
        """Stream a whole float [N] waveform (one channel, in [-1, 1]); returns float32 [N] aligned
        with the input (latency removed). ValueError for integer PCM, several channels or samples
        that are not finite."""
        waveform = audio_io.mono_samples(waveform)
        self.reset()
        padded = np.pad(waveform, (0, self.latency + (-len(waveform)) % self.hop))
        out = np.concatenate([self.process(padded[i:i + self.hop]) for i in range(0, len(padded), self.hop)])
        return out[self.latency:self.latency + len(waveform)]
