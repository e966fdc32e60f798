"""audio_dl: deep learning for signals and sound on Keras/TensorFlow.

Speech denoising (waveform in, waveform out, STFT inside the graph) and folk-melody generation,
exported for TF Serving (SavedModel) and devices (TFLite).
"""

__version__ = "0.1.0"

import os as _os

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ INFO/WARNING lines drown the progress bar
