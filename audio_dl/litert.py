"""The one way this package opens a .tflite: ai_edge_litert (no Flex ops), signature runner."""

from __future__ import annotations

from pathlib import Path


def signature_runner(model: str | Path | bytes, num_threads: int = 1):
    """Signature runner of a TFLite model given as a path or as flatbuffer bytes."""
    from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415 - heavy import, only when used

    if isinstance(model, (bytes, bytearray)):
        interpreter = Interpreter(model_content=bytes(model), num_threads=num_threads)
    else:
        interpreter = Interpreter(model_path=str(model), num_threads=num_threads)
    return interpreter.get_signature_runner()
