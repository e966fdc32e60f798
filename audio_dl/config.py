"""Configuration as data: one frozen dataclass per model family, named presets, `key=value` overrides.

Every other module reads its numbers (sample rate, window, hop, ...) from these objects; the
config is saved as JSON next to every run and export so a model can always be rebuilt.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from pathlib import Path

import numpy as np

from audio_dl import atomic
from audio_dl.errors import UsageError


@dataclasses.dataclass(frozen=True)
class DenoiserConfig:
    """Speech denoiser: data, DSP, model and training settings.

    Paths in `speech`/`noise` are folders, globs of files, single files or `.txt` lists of files
    (a relative path read from the list's folder);
    `bundled` stands for the small real corpus shipped inside the package.
    """

    # --- signal: the one place for each DSP choice ---------------------------------------
    sample_rate: int = 8000  # Hz, the model rate
    frame_length: int = 256  # samples: window length and n_fft
    hop_length: int = 64  # samples (75 % overlap)
    window: str = "hamming_window"  # a kapre/tf.signal window name
    context_frames: int = 8  # noisy frames that predict the current clean frame
    lookahead_frames: int = 0  # mask model: future frames it may also see (latency + this many hops)

    # --- data -------------------------------------------------------------------------------
    speech: tuple[str, ...] = ("bundled",)
    noise: tuple[str, ...] = ("bundled",)
    val_speakers: tuple[str, ...] = ()  # speaker folders held out; empty -> val_fraction of speakers
    val_noises: tuple[str, ...] = ()  # noise file stems held out; empty -> val_fraction of noise files
    val_fraction: float = 0.2
    crop_seconds: float = 2.0
    snr_db: tuple[float, float] = (0.0, 0.0)  # SNR drawn uniformly from [low, high] dB
    min_speech_dbfs: float = -45.0  # crops whose clean RMS is below this are dropped from training
    val_examples: int = 64  # fixed validation mixtures (deterministic from the seed)
    preload_mb: float = 1024.0  # decode speech (and noise) once into memory when it fits in this many MB; 0: never

    # --- real-world simulation (augmentation, training split only) ---------------------------
    augment: bool = False
    synthetic_noise_probability: float = 0.25  # share of noise clips replaced by a synthetic noise
    synthetic_noises: tuple[str, ...] = ("colored", "hum")  # its families, equally likely (of SYNTHETIC_NOISES)
    second_noise_probability: float = 0.25  # share of examples with a second real noise added
    noise_tilt_db: float = 12.0  # random spectral tilt of the noise, +-this/2 dB at the band edges
    gain_db: tuple[float, float] = (-25.0, 0.0)  # random level of the whole recording
    speech_speed: tuple[float, float] = (1.0, 1.0)  # speed perturbation of the speech, factor drawn uniformly
    reverb_probability: float = 0.0  # share of examples convolved with a room impulse response
    rt60_seconds: tuple[float, float] = (0.15, 0.6)  # simulated rooms
    impulse_responses: tuple[str, ...] = ()  # recorded RIR files; used instead of simulated ones
    bandpass_probability: float = 0.0  # share of examples through a random microphone band-pass
    low_cut_hz: tuple[float, float] = (60.0, 300.0)
    high_cut_hz: tuple[float, float] = (2800.0, 3900.0)

    # --- model ------------------------------------------------------------------------------
    architecture: str = "mask"  # "mask" (default design) or "fcn16" (the demo's network)
    hidden_units: int = 256  # mask model width
    bottleneck_units: int = 64  # mask model: per-frame projection before the context layer (0: none)
    hidden_layers: int = 1  # mask model: dense layers after the 8-frame context layer
    temporal_blocks: int = 0  # mask model: dilated causal conv blocks after the context layer (reach 2 * (2^n - 1) frames)
    recurrent_units: int = 0  # mask model: a GRU of this size after the context layer (0: none)
    recurrent_warmup_seconds: float = 1.0  # chunked inference: audio replayed to rebuild the GRU state
    mask_floor: float = 0.0  # lowest gain the mask may apply, 0..1
    noise_context_frames: int = 64  # mask model: frames averaged into the long-term (noise floor) feature
    noise_minimum: bool = False  # mask model: also their minimum per bin (minimum statistics) as a feature;
    # tried on the large preset, not better on held-out noise (README)

    # --- training ---------------------------------------------------------------------------
    loss: str = "sisdr+spectral"  # "sisdr+spectral" (waveform SI-SDR + compressed spectrum) or "magnitude_mse"
    spectral_weight: float = 10.0  # weight of the compressed-spectrum term in "sisdr+spectral"
    epochs: int = 12
    steps_per_epoch: int = 100
    batch_size: int = 32
    learning_rate: float = 1e-3
    lr_decay_per_epoch: float = 1.0  # learning rate multiplied by this after every epoch
    clipnorm: float = 1.0
    weight_decay: float = 0.0  # decoupled (AdamW-style) weight decay: each step w -= lr * weight_decay * w
    seed: int = 1234
    normalization_batches: int = 8  # batches used to adapt the in-model input normalisation

    # --- export -----------------------------------------------------------------------------
    tflite_seconds: float = 2.0  # fixed input length of the whole-clip TFLite model

    def __post_init__(self):
        _check(self.sample_rate >= 4000, "sample_rate must be >= 4000 Hz")
        _check(self.frame_length > 0 and self.frame_length & (self.frame_length - 1) == 0,
               "frame_length must be a power of two")
        _check(0 < self.hop_length <= self.frame_length and self.frame_length % self.hop_length == 0,
               "hop_length must divide frame_length")
        _check(self.window in WINDOWS, f"window must be one of {WINDOWS}")
        _check(self.context_frames >= 2, "context_frames must be >= 2 (the current frame and at least one before it)")
        _check(bool(self.speech) and bool(self.noise), "speech and noise each need at least one path")
        _check(self.architecture in ARCHITECTURES, f"architecture must be one of {ARCHITECTURES}")
        _check(self.loss in LOSSES, f"loss must be one of {LOSSES}")
        _check(self.loss != "magnitude_mse" or self.architecture == "fcn16",
               "loss=magnitude_mse needs architecture=fcn16 (the mask model has no normalised magnitude to compare)")
        _check(0.0 <= self.val_fraction < 1.0, "val_fraction must be in [0, 1)")
        _check(self.preload_mb >= 0, "preload_mb must be >= 0")
        _check(self.crop_seconds * self.sample_rate >= self.frame_length,
               "crop_seconds is shorter than one frame")
        for name in ("snr_db", "gain_db", "speech_speed", "rt60_seconds", "low_cut_hz", "high_cut_hz"):
            _check(len(getattr(self, name)) == 2, f"{name} takes two values: low,high")
            low, high = getattr(self, name)
            _check(low <= high, f"{name}: low must be <= high")
        _check(-30.0 <= self.snr_db[0] and self.snr_db[1] <= 60.0, "snr_db must lie in [-30, 60] dB")
        _check(0.5 <= self.speech_speed[0] and self.speech_speed[1] <= 2.0, "speech_speed must lie in [0.5, 2]")
        _check(0.1 <= self.rt60_seconds[0] and self.rt60_seconds[1] <= 3.0,  # no simulated room rings shorter
               "rt60_seconds must lie in [0.1, 3] s (fully absorbing walls of the smallest room ring for 0.074 s)")
        _check(not self.impulse_responses or (self.augment and self.reverb_probability > 0),
               "impulse_responses are only used for reverb: set augment=true and reverb_probability > 0")
        _check(-80.0 <= self.min_speech_dbfs <= 0.0, "min_speech_dbfs must lie in [-80, 0] dBFS")
        _check(self.bandpass_probability == 0 or self.high_cut_hz[1] < self.sample_rate / 2,
               "high_cut_hz must stay below Nyquist")
        for name in ("reverb_probability", "bandpass_probability", "mask_floor", "synthetic_noise_probability",
                     "second_noise_probability"):
            _check(0.0 <= getattr(self, name) <= 1.0, f"{name} must be in [0, 1]")
        for name in ("epochs", "steps_per_epoch", "batch_size", "hidden_units", "val_examples",
                     "normalization_batches"):
            _check(getattr(self, name) >= 1, f"{name} must be >= 1")
        _check(self.noise_context_frames >= 2, "noise_context_frames must be >= 2 (1 leaves the streaming model an empty state)")
        _check(min(self.hidden_layers, self.bottleneck_units, self.recurrent_units) >= 0,
               "hidden_layers, bottleneck_units and recurrent_units must be >= 0")
        _check(self.recurrent_warmup_seconds >= 0, "recurrent_warmup_seconds must be >= 0")
        _check(self.lookahead_frames >= 0 and self.temporal_blocks >= 0, "lookahead_frames and temporal_blocks must be >= 0")
        for name in ("recurrent_units", "temporal_blocks", "lookahead_frames", "noise_minimum"):
            _check(not getattr(self, name) or self.architecture == "mask", f"{name} needs architecture=mask")
        _check(self.learning_rate > 0 and self.clipnorm > 0, "learning_rate and clipnorm must be > 0")
        _check(len(self.synthetic_noises) > 0 and set(self.synthetic_noises) <= set(SYNTHETIC_NOISES),
               f"synthetic_noises takes one or more of {SYNTHETIC_NOISES}")
        _check(self.weight_decay >= 0, "weight_decay must be >= 0")
        _check(0.0 < self.lr_decay_per_epoch <= 1.0, "lr_decay_per_epoch must be in (0, 1]")
        _check(self.tflite_seconds * self.sample_rate >= self.frame_length,
               "tflite_seconds is shorter than one frame")
        _check_seed(self.seed)

    # --- derived values ---------------------------------------------------------------------
    @property
    def n_bins(self) -> int:
        """Frequency bins of the one-sided STFT (129 for a 256-point frame)."""
        return self.frame_length // 2 + 1

    @property
    def history_frames(self) -> int:
        """Past frames that influence the gain of the current frame (the streaming model's memory;
        a GRU's state reaches further, without a hard limit)."""
        if self.architecture == "fcn16":
            return self.context_frames - 1
        # long-term average, level normalisation, context conv, dilated blocks
        return self.noise_context_frames - 1 + 2 * (self.context_frames - 1) + self.temporal_state_frames

    @property
    def temporal_state_frames(self) -> int:
        """Frames the dilated blocks reach back: 2d per block of dilation d = 1, 2, 4, ...
        (kernel 3), 2(2^n - 1) in all; the streaming model keeps that many block inputs."""
        return 2 * (2 ** self.temporal_blocks - 1)

    @property
    def latency_samples(self) -> int:
        """Delay of the streaming model: the frame it must fill (frame - hop) plus its lookahead."""
        return self.frame_length - self.hop_length + self.lookahead_frames * self.hop_length

    @property
    def crop_samples(self) -> int:
        return int(round(self.crop_seconds * self.sample_rate))

    @property
    def tflite_samples(self) -> int:
        return int(round(self.tflite_seconds * self.sample_rate))


ARCHITECTURES = ("mask", "fcn16")
WINDOWS = ("hamming_window", "hann_window", "kaiser_bessel_derived_window", "kaiser_window", "vorbis_window")  # kapre's
SYNTHETIC_NOISES = ("colored", "hum", "rotor", "bursts", "chirps")  # see augment.synthetic_noise
LOSSES = ("sisdr+spectral", "magnitude_mse")

DENOISER_PRESETS: dict[str, dict] = {
    # The shipped recipe: mask model, waveform + compressed-spectrum loss, real-world augmentation.
    "default": dict(augment=True, reverb_probability=0.2, bandpass_probability=0.3, epochs=16,
                    lr_decay_per_epoch=0.9),
    # The shipped model: the default recipe on the package-built corpus
    # (`python -m audio_dl.datasets denoiser-corpus data/denoiser`), -5..10 dB, longer, and a mask
    # that never attenuates by more than 20 dB (on held-out audio: STOI -0.012 instead of -0.024),
    # six dilated temporal blocks (1 s more context; +0.203 / +0.016 / +3.00 dB on held-out
    # audio instead of +0.174 / +0.003 / +2.63 dB without them), trained for 80 epochs with the
    # learning rate ending where 40 epochs at x0.93 ended (+0.225 / +0.021 / +3.35 dB instead of
    # +0.203 / +0.016 / +3.00 dB). Its fixed-length TFLite model takes 8 s: each call re-reads
    # 1.7 s of context, which would be most of a 2 s clip.
    "large": dict(augment=True, reverb_probability=0.2, bandpass_probability=0.3, epochs=80,
                  lr_decay_per_epoch=0.965, speech=("data/denoiser/speech",), noise=("data/denoiser/noise",),
                  snr_db=(-5.0, 10.0), mask_floor=0.1, temporal_blocks=6, tflite_seconds=8.0),
    # The MATLAB demo: its 16-layer network, MSE on normalised magnitudes, Adam, 3 epochs,
    # mini-batch 128, learning rate x0.9 every epoch, 0 dB SNR, no augmentation. The demo's
    # mini-batch is 128 single frames at lr 1e-5; ours is 128 crops (~32 k frames), so a step
    # sees far more data and the rate is 1e-3.
    "matlab": dict(architecture="fcn16", loss="magnitude_mse", epochs=3, batch_size=128,
                   steps_per_epoch=100, learning_rate=1e-3, lr_decay_per_epoch=0.9, augment=False),
    # Seconds-long runs for tests and smoke checks.
    "tiny": dict(epochs=1, steps_per_epoch=2, batch_size=4, crop_seconds=0.5, val_examples=4,
                 normalization_batches=1, hidden_units=32, hidden_layers=1, bottleneck_units=16, tflite_seconds=0.5),
}


TUNES_PITCH_RANGE = -1  # MelodyConfig.pitch_low/pitch_high: take the training tunes' range (0..127 are pitches)


@dataclasses.dataclass(frozen=True)
class MelodyConfig:
    """Folk melody model: corpus, token grid, model and training settings.

    Tokens (one per grid step, `steps_per_quarter` steps per quarter note):
    PAD (0), START, END, REST, HOLD, then one NOTE-ON token per MIDI pitch in
    [pitch_low, pitch_high]. A repeated note is NOTE-ON NOTE-ON, a held note NOTE-ON HOLD.
    `pitch_low`/`pitch_high`: TUNES_PITCH_RANGE (-1) takes the training tunes' range; a range set by
    the user (0..127) is kept (training tunes with notes outside it are skipped and counted).
    """

    # --- data ---------------------------------------------------------------------------------
    midi_dir: tuple[str, ...] = ("folk",)  # folders/globs of MIDI; "folk" = the cached default corpus
    steps_per_quarter: int = 4  # grid: 4 = 16th notes
    max_steps: int = 1536  # tunes longer than this many grid steps are dropped (counted)
    max_chord_share: float = 0.1  # tunes with more chord onsets than this share are polyphonic (dropped)
    val_fraction: float = 0.1  # share of tunes held out (by a hash of the file name)
    transpose: tuple[int, int] = (-5, 6)  # training tunes are shifted by a random semitone in [low, high]
    eval_midi_dir: tuple[str, ...] = ()  # held-out collections, each scored after training ("airds", "essen")
    max_eval_tunes: int = 1000  # at most this many held-out tunes are scored (a fixed subset)
    generated_tunes: int = 100  # tunes generated from scratch for the generation statistics
    pitch_low: int = TUNES_PITCH_RANGE
    pitch_high: int = TUNES_PITCH_RANGE

    # --- model --------------------------------------------------------------------------------
    embedding_dim: int = 32
    lstm_units: int = 250
    lstm_layers: int = 2
    dropout: float = 0.2

    # --- training -----------------------------------------------------------------------------
    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 2e-3
    lr_decay_per_epoch: float = 0.95
    clipnorm: float = 1.0
    patience: int = 8  # stop after this many epochs without a better validation loss
    seed: int = 1234

    def __post_init__(self):
        _check(self.steps_per_quarter >= 1, "steps_per_quarter must be >= 1")
        _check(self.max_steps >= 16, "max_steps must be >= 16")
        _check(0.0 <= self.max_chord_share <= 1.0, "max_chord_share must be in [0, 1]")
        _check(0.0 < self.val_fraction < 1.0, "val_fraction must be in (0, 1)")
        _check(len(self.transpose) == 2 and self.transpose[0] <= 0 <= self.transpose[1],
               "transpose takes two values low,high with low <= 0 <= high")
        ends = (self.pitch_low, self.pitch_high)
        midi_pitches = all(0 <= end <= 127 for end in ends if end != TUNES_PITCH_RANGE)
        _check(not midi_pitches or ends.count(TUNES_PITCH_RANGE) != 1,  # then one end alone is wrong
               "set both pitch_low and pitch_high (or neither: the training tunes' range)")
        _check(midi_pitches and self.pitch_low <= self.pitch_high, "pitch_low/pitch_high must be MIDI pitches, low <= high")
        for name in ("embedding_dim", "lstm_units", "lstm_layers", "epochs", "batch_size", "patience",
                     "max_eval_tunes", "generated_tunes"):
            _check(getattr(self, name) >= 1, f"{name} must be >= 1")
        _check(max(self.embedding_dim, self.lstm_units) <= 8192 and self.lstm_layers <= 16,
               "embedding_dim and lstm_units must be <= 8192, lstm_layers <= 16")
        _check(0.0 <= self.dropout < 1.0, "dropout must be in [0, 1)")
        _check(self.learning_rate > 0 and self.clipnorm > 0, "learning_rate and clipnorm must be > 0")
        _check(0.0 < self.lr_decay_per_epoch <= 1.0, "lr_decay_per_epoch must be in (0, 1]")
        _check_seed(self.seed)

    @property
    def pitch_range_is_set(self) -> bool:
        """pitch_low/pitch_high are MIDI pitches (else the corpus sets them to its training tunes' range)."""
        return self.pitch_high != TUNES_PITCH_RANGE


MELODY_PRESETS: dict[str, dict] = {
    # The webinar's folkNet: 2 x LSTM(250) + dropout + softmax, Adam, gradient clipping at 1.
    # Scored after training on two collections it never saw: Aird's Airs (British Isles, like
    # the training tunes) and the Essen folksongs (German and Chinese: a harder style shift).
    "folknet": dict(eval_midi_dir=("airds", "essen"), epochs=60, lr_decay_per_epoch=0.97, patience=8),
    # Small and quick, for tests and smoke checks: seconds on a folder of a few tunes (the tests'
    # fixture); 2 epochs over every tune of the default corpus take minutes.
    "tiny": dict(lstm_units=16, embedding_dim=8, epochs=2, batch_size=4, patience=2,
                 max_eval_tunes=8, generated_tunes=4),
}

PRESETS = {DenoiserConfig: DENOISER_PRESETS, MelodyConfig: MELODY_PRESETS}
DEFAULT_PRESET = {DenoiserConfig: "default", MelodyConfig: "folknet"}


class ConfigError(UsageError):
    """A configuration value is out of range or unknown."""


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _check_seed(seed: int) -> None:
    _check(0 <= seed < 2 ** 32, "seed must be in [0, 2**32)")


def make_config(cls, preset: str | None = None, config_file: str | Path | None = None,
                overrides: typing.Sequence[str] = ()):
    """Preset (default: the family's default), then a JSON config file, then `key=value`
    overrides, in that order."""
    presets = PRESETS[cls]
    preset = DEFAULT_PRESET[cls] if preset is None else preset
    if preset not in presets:
        raise ConfigError(f"unknown preset {preset!r}; choose from {sorted(presets)}")
    values = dict(presets[preset])
    if config_file is not None:
        values.update(read_json_object(Path(config_file), "config file"))
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r} is not key=value")
        values[key.strip()] = parse_value(cls, key.strip(), text.strip())
    return build(cls, values)


def read_json_object(path: Path, what: str) -> dict:
    """The JSON object in `path`; ConfigError naming `what` if it is missing, not a file, not
    UTF-8 JSON or not an object."""
    if not path.is_file():
        raise ConfigError(f"{what} {path} is a folder, not a JSON file" if path.is_dir() else f"{what} not found: {path}")
    try:
        values = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{what} {path} is not valid JSON: {error}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{what} {path} must hold a JSON object of key: value, not {type(values).__name__}")
    return values


def build(cls, values: dict):
    """Instantiate `cls` from a plain dict (JSON lists become tuples); unknown keys and values of
    the wrong type (a float for an int, a bool for a number, NaN or infinity) are errors."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"unknown config key(s) {unknown}; known: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    return cls(**{key: _typed(key, hints[key], value) for key, value in values.items()})


def _finite(number: int | float) -> bool:
    try:
        return math.isfinite(number)
    except OverflowError:  # an int beyond float range
        return False


def _typed(key: str, kind, value):
    """`value` as the field type `kind` (JSON lists and single strings become tuples)."""
    if typing.get_origin(kind) is tuple:
        items = (value,) if isinstance(value, str) else value
        _check(isinstance(items, (list, tuple)), f"{key} takes a list of values, got {value!r}")
        return tuple(_typed(key, typing.get_args(kind)[0], item) for item in items)
    if kind is float:
        _check(isinstance(value, (int, float)) and not isinstance(value, bool) and _finite(value),
               f"{key} must be a finite number, got {value!r}")
        return float(value)
    if kind is int:
        _check(isinstance(value, int) and not isinstance(value, bool), f"{key} must be an integer, got {value!r}")
    else:
        _check(isinstance(value, kind), f"{key} must be a {kind.__name__}, got {value!r}")
    return value


def parse_value(cls, key: str, text: str):
    """Parse an override's text by the field's declared type (tuples are comma-separated)."""
    hints = typing.get_type_hints(cls)
    if key not in hints:
        raise ConfigError(f"unknown config key {key!r}; known: {sorted(hints)}")
    kind = hints[key]
    try:
        if typing.get_origin(kind) is tuple:
            element = typing.get_args(kind)[0]
            return tuple(_scalar(element, part.strip()) for part in text.split(",") if part.strip())
        return _scalar(kind, text)
    except ValueError:
        raise ConfigError(f"{key}={text!r} is not a valid {getattr(kind, '__name__', kind)}") from None


def _scalar(kind, text: str):
    if kind is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(text)
    return kind(text)


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


# may change between runs of one run dir: how data is held, what is evaluated and exported
RERUN_KEYS = frozenset({"preload_mb", "tflite_seconds", "max_eval_tunes", "generated_tunes", "eval_midi_dir"})


def json_text(value) -> str:
    """Strict JSON of nested dicts/lists of numbers and strings, indented: a value that is not a
    finite number (an undefined average, NaN or infinity) becomes null; numpy scalars become numbers."""
    def strict(item):
        if isinstance(item, dict):
            return {key: strict(v) for key, v in item.items()}
        if isinstance(item, (list, tuple)):
            return [strict(v) for v in item]
        if isinstance(item, (float, np.floating)):
            return float(item) if math.isfinite(item) else None
        return item.item() if isinstance(item, np.generic) else item

    return json.dumps(strict(value), indent=2, allow_nan=False) + "\n"


def save_config(cfg, path: str | Path) -> None:
    atomic.write_text(path, json.dumps(to_dict(cfg), indent=2) + "\n")


def load_config(cls, path: str | Path):
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path} not found: an exported model needs the config.json it was exported with")
    return build(cls, read_json_object(path, "config"))
