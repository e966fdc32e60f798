"""The one way this package opens a .tflite: ai_edge_litert (no Flex ops), signature runner."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from audio_dl import native_logs


def _interpreter(model: str | Path | bytes, num_threads: int):
    """An ai_edge_litert Interpreter of the model, its tensors allocated when its inputs have
    fixed shapes, as this package's exports do (one with a dynamic dimension is allocated at its
    first call, once its inputs are resized: TFLite's XNNPACK line then shows, once a process)."""
    from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415 - heavy import, only when used

    if not isinstance(model, (bytes, bytearray)):
        model = Path(model).read_bytes()  # LiteRT would take the path as UTF-8 text; on the heap, not mapped: a few MB
    with native_logs.log_lines_dropped():  # the first allocation's "INFO: Created TensorFlow Lite XNNPACK ..."
        interpreter = Interpreter(model_content=bytes(model), num_threads=num_threads)
        if all(-1 not in detail["shape_signature"] for detail in interpreter.get_input_details()):
            interpreter.allocate_tensors()
    return interpreter


def signature_runner(model: str | Path | bytes, num_threads: int = 1):
    """Signature runner of a TFLite model given as a path or as flatbuffer bytes."""
    return _interpreter(model, num_threads).get_signature_runner()


class FixedShapeRunner:
    """A TFLite model's signature called many times at its own input shapes (a streaming step):
    the tensors are located once, and no call resizes and re-allocates every input as
    SignatureRunner.__call__ does (7 of the 79 us of a streaming denoiser hop). Same
    keyword-in, dict-out use; the outputs are fresh arrays.
    """

    def __init__(self, model: str | Path | bytes, num_threads: int = 1):
        self._interpreter = _interpreter(model, num_threads)
        self._interpreter.allocate_tensors()  # before a signature runner exists: it pins the buffers
        runner = self._interpreter.get_signature_runner()
        self.input_details, self.output_details = runner.get_input_details(), runner.get_output_details()
        self._inputs = {name: d["index"] for name, d in self.input_details.items()}
        self._outputs = {name: d["index"] for name, d in self.output_details.items()}

    def __call__(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        if inputs.keys() != self._inputs.keys():
            raise ValueError(f"expected inputs {sorted(self._inputs)}, got {sorted(inputs)}")
        for name, value in inputs.items():
            self._interpreter.set_tensor(self._inputs[name], value)
        self._interpreter.invoke()
        return {name: self._interpreter.get_tensor(index) for name, index in self._outputs.items()}
