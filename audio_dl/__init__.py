"""audio_dl: deep learning for signals and sound on Keras/TensorFlow.

Speech denoising (waveform in, waveform out, STFT inside the graph) and folk-melody generation,
exported for TF Serving (SavedModel) and devices (TFLite).
"""

__version__ = "0.1.0"

import os as _os
import sys as _sys

# TensorFlow's C++ INFO/WARNING lines drown the progress bar; where no NVIDIA GPU can be opened its
# CUDA build also logs "failed call to cuInit" as an ERROR at every start, above a tool's one error line
_GPU_DEVICES = ("/dev/nvidiactl", "/dev/dxg", "/dev/nvhost-ctrl-gpu")  # Linux driver, WSL2, Jetson
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2" if any(map(_os.path.exists, _GPU_DEVICES)) else "3")

if _sys.argv[:1] == ["-m"]:  # loaded to locate `python -m audio_dl.<tool>` (runpy's documented placeholder)
    from audio_dl import cli as _cli

    _cli.report_interrupts_while_loading()
