"""The web app: a piano that asks the melody model to continue a tune, and a denoiser listening page.

Flask; both models are loaded once when the app is created; every request calls the same library
functions as the CLIs (compose.MelodyGenerator, inference.denoise_array, plots). Uploads are
size-capped and must decode as audio; sample and noise choices are names looked up in the bundled
corpus on the server (the client never sends a path). Errors come back as {"error": "..."}.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import logging
import math
import tempfile
from pathlib import Path

import numpy as np
import soundfile
import tensorflow as tf
from flask import Flask, jsonify, request, send_from_directory
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from audio_dl import audio_io, inference, midi_io, plots
from audio_dl.compose import TEMPERATURES, MelodyGenerator
from audio_dl.data import corpora
from audio_dl.data.augment import mix_at_snr
from audio_dl.errors import UsageError

log = logging.getLogger(__name__)

MAX_UPLOAD_MB = 20
MAX_UPLOAD_SECONDS = 120.0
MAX_UPLOAD_SAMPLES = int(MAX_UPLOAD_SECONDS * 48000 * 2)  # channels x frames: 2 min of 48 kHz stereo
MAX_UPLOAD_PEAK = 1000.0  # float audio is +-1; beyond 60 dB over full scale it is not audio
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".gsm")
MAX_PRIMER_NOTES = 256
MAX_PRIMER_CHARACTERS = 8192
MAX_MELODY_REQUEST_BYTES = 256 * 1024
MAX_TUNE_SECONDS = 300.0  # primer + continuation as rendered audio
RENDER_RATE = 16000
STATIC = Path(__file__).parent / "static"


class AppError(Exception):
    """A request the app refuses, with the message shown in the page."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclasses.dataclass
class Models:
    melody: MelodyGenerator | None
    denoiser: inference.Denoiser | None
    melody_problem: str = ""
    denoiser_problem: str = ""


def load_models(melody_path: Path, denoiser_path: Path) -> Models:
    """Load each model once; a missing model disables its page with the reason instead of failing."""
    melody = denoiser = None
    melody_problem = denoiser_problem = ""
    try:
        melody = MelodyGenerator.from_export(melody_path)
    except UsageError as error:
        melody_problem = str(error)
    try:
        denoiser = inference.load_denoiser(denoiser_path)
    except UsageError as error:
        denoiser_problem = str(error)
    return Models(melody, denoiser, melody_problem, denoiser_problem)


def bundled_samples() -> dict[str, Path]:
    """Clean speech of held-out speakers and real noises, by display name (the only files served)."""
    root = corpora.bundled_denoiser_root()
    splits = corpora.read_splits((str(root / "speech"),))
    samples = {}
    for speaker in splits.get("val_speakers", []):
        for path in sorted((root / "speech" / speaker).rglob("*.flac"))[:4]:
            samples[f"{speaker}/{path.stem}"] = path
    return samples


def bundled_noises() -> dict[str, Path]:
    return {p.stem: p for p in sorted((corpora.bundled_denoiser_root() / "noise").glob("*.flac"))}


def wav_data_url(audio: np.ndarray, rate: int) -> str:
    buffer = io.BytesIO()
    soundfile.write(buffer, np.clip(audio, -1, 1), rate, format="WAV", subtype="PCM_16")
    return "data:audio/wav;base64," + base64.b64encode(buffer.getvalue()).decode()


def png_data_url(draw) -> str:
    """Run draw(path) (a plots.* function writing a PNG) and return the image as a data URL."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "figure.png"
        draw(path)
        return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def _number(form, key: str, default: float, low: float, high: float) -> float:
    text = form.get(key, "")
    if text in ("", None):
        return default
    try:
        if isinstance(text, bool):  # JSON true is not 1
            raise TypeError
        value = float(text)
    except (TypeError, ValueError):
        raise AppError(f"{key} must be a number") from None
    except OverflowError:  # a JSON integer beyond any float: out of range
        value = math.inf if text > 0 else -math.inf
    if not low <= value <= high:
        raise AppError(f"{key} must be between {_plain(low)} and {_plain(high)}")
    return value


def _plain(number: float) -> str:
    """2147483647 as 2147483647 (not 2.14748e+09), 0.01 as 0.01."""
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


def _whole_number(form, key: str, default: int, low: int, high: int) -> int:
    value = _number(form, key, default, low, high)
    if value != int(value):
        raise AppError(f"{key} must be a whole number")
    return int(value)


# --- melody --------------------------------------------------------------------------------------

def _midi_pitch(value) -> int:
    """A played note's pitch: a whole number (not a bool, not 60.5); TypeError otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise TypeError(value)
    return int(value)


def primer_from_request(body: dict, steps_per_quarter: int, step: float) -> tuple[list[midi_io.Note], dict]:
    """The primer, and the reply's notices about it (chord_notes_left_out, notes_moved_to_grid,
    notes_dropped_by_grid, notes_spread_by_grid, rest_dropped): `text` (a note string, see midi_io.read_note_string)
    or `notes` played on the keyboard as [{"pitch", "start", "end"}] in seconds, quantised to the
    model's grid of `step` seconds. Of keys pressed together (a chord, by midi_io.group_chords, the
    rule of MIDI files) the top one is kept, from the chord's first onset to its last strike's end
    (a key struck twice within a quarter step, or within one chord, is one note, not a chord note
    left out); midi_io.snap_to_grid puts them on the grid, a note that rounds to the previous
    one's step or before moved one step after it (counted: notes_spread_by_grid)."""
    if body.get("text"):
        text = body["text"]
        if not isinstance(text, str):
            raise AppError("text must be a string of note names, e.g. \"G4 A4 B4\"")
        if len(text) > MAX_PRIMER_CHARACTERS:
            raise AppError(f"the primer text may hold at most {MAX_PRIMER_CHARACTERS} characters")
        notes, fit = midi_io.read_note_string(text, steps_per_quarter)
        return notes, _notices(notes_moved_to_grid=fit.moved_to_grid, notes_dropped_by_grid=fit.merged_by_grid,
                               rest_dropped=fit.rest_dropped)
    played = body.get("notes", [])
    if not isinstance(played, list):
        raise AppError('notes must be a list of {"pitch", "start", "end"} objects')
    if not played:
        raise AppError("play a few notes or type a primer first")
    if len(played) > MAX_PRIMER_NOTES:
        raise AppError(f"the primer may hold at most {MAX_PRIMER_NOTES} notes")
    try:
        timed = sorted((float(n["start"]), float(n["end"]), _midi_pitch(n["pitch"])) for n in played)
    except (KeyError, TypeError, ValueError, OverflowError):
        raise AppError("notes must be objects with pitch, start and end") from None
    if not all(math.isfinite(a) and math.isfinite(b) and 0 <= b - a < 60 for a, b, _ in timed) or \
            timed[-1][0] - timed[0][0] > 600:
        raise AppError("note times must be finite seconds (a note under a minute, the primer under ten)")
    bad = next((pitch for _, _, pitch in timed if not 0 <= pitch <= 127), None)
    if bad is not None:
        raise AppError(f"pitch {bad} is not a MIDI note")
    origin = timed[0][0]
    chords = midi_io.group_chords(_one_strike_per_bounce(
        [(pitch, (start - origin) / step, (end - origin) / step) for start, end, pitch in timed]))
    notes, spread = midi_io.snap_to_grid((midi_io.top_note(chord) for chord in chords), spread=True)
    return notes, _notices(chord_notes_left_out=sum(midi_io.notes_under_top(chord) for chord in chords),
                           notes_spread_by_grid=spread)


def _one_strike_per_bounce(timed: list[tuple[int, float, float]]) -> list[tuple[int, float, float]]:
    """(pitch, start, end) in grid steps, in order of start, with a key struck again less than a
    quarter step after it was first struck (a bouncing key) made one strike, to its last end."""
    strikes: list[tuple[int, float, float]] = []
    latest: dict[int, int] = {}  # pitch -> index in strikes of its latest strike
    for pitch, start, end in timed:
        index = latest.get(pitch)
        if index is not None and start - strikes[index][1] < midi_io.STRUCK_TOGETHER_STEPS:
            strikes[index] = (pitch, strikes[index][1], max(end, strikes[index][2]))
        else:
            latest[pitch] = len(strikes)
            strikes.append((pitch, start, end))
    return strikes


def _notices(chord_notes_left_out: int = 0, notes_moved_to_grid: int = 0, notes_dropped_by_grid: int = 0,
             notes_spread_by_grid: int = 0, rest_dropped: bool = False) -> dict:
    """The reply's fields about the primer, each present in every reply (the page words them)."""
    return {"chord_notes_left_out": chord_notes_left_out, "notes_moved_to_grid": notes_moved_to_grid,
            "notes_dropped_by_grid": notes_dropped_by_grid, "notes_spread_by_grid": notes_spread_by_grid,
            "rest_dropped": rest_dropped}


def make_tune(generator: MelodyGenerator, body: dict) -> dict:
    cfg = generator.cfg
    qpm = _number(body, "qpm", 100.0, 30.0, 300.0)
    step = 60.0 / qpm / cfg.steps_per_quarter  # seconds per grid step
    primer, notices = primer_from_request(body, cfg.steps_per_quarter, step)
    temperature = _number(body, "temperature", 1.0, *TEMPERATURES)  # the CLI's range
    seed = _whole_number(body, "seed", 0, 0, 2**31 - 1)
    max_notes = _whole_number(body, "max_notes", 128, 1, 512)
    tune_steps = int(MAX_TUNE_SECONDS / step)  # what renders in MAX_TUNE_SECONDS
    primer_steps = midi_io.melody_steps(primer)
    if primer_steps >= tune_steps:
        raise AppError(f"the primer lasts {primer_steps * step:.0f} s at {qpm:g} qpm, which leaves no room to "
                       f"continue it: the app plays tunes of up to {MAX_TUNE_SECONDS:g} s")
    result = generator.continue_tune(primer, temperature=temperature, seed=seed, max_notes=max_notes,
                                     max_steps=tune_steps - primer_steps)
    generated = result.generated
    notes = result.primer + generated
    midi = io.BytesIO()
    midi_io.to_pretty_midi(notes, cfg.steps_per_quarter, qpm).write(midi)
    return {
        "primer": [dataclasses.asdict(n) for n in result.primer],
        "generated": [dataclasses.asdict(n) for n in generated],
        "ended": result.ended,
        "transposed": result.transposed,
        **notices,
        "steps_per_quarter": cfg.steps_per_quarter,
        "wav": wav_data_url(midi_io.render_audio(notes, cfg.steps_per_quarter, qpm, RENDER_RATE), RENDER_RATE),
        "midi": "data:audio/midi;base64," + base64.b64encode(midi.getvalue()).decode(),
        "piano_roll": png_data_url(lambda path: plots.piano_roll(
            result.primer, generated, cfg.steps_per_quarter, path, title=f"temperature {temperature:g}",
            continued_from=result.primer_steps)),
    }


# --- denoiser ------------------------------------------------------------------------------------

def read_upload(upload, rate: int) -> np.ndarray:
    """Mono float32 at `rate` from an uploaded file; AppError when it is not audio we can read."""
    suffix = Path(upload.filename or "").suffix.lower()
    if suffix not in AUDIO_SUFFIXES:
        raise AppError(f"unsupported file type {suffix or '(none)'}: upload one of {', '.join(AUDIO_SUFFIXES)}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"upload{suffix}"  # our own name: the client's name is never used as a path
        upload.save(path)
        info = audio_io.probe(path)
        if info is None:
            raise AppError(f"{upload.filename} holds no samples" if audio_io.holds_no_samples(path)
                           else f"{upload.filename} is not an audio file this app can decode")
        if info.seconds > MAX_UPLOAD_SECONDS:
            raise AppError(f"{upload.filename} is {info.seconds:.0f} s long; the app takes up to {MAX_UPLOAD_SECONDS:g} s")
        if info.frames * info.channels > MAX_UPLOAD_SAMPLES:  # a small compressed file can decode to gigabytes
            raise AppError(f"{upload.filename} decodes to {info.channels} channels x {info.frames} frames; the app "
                           f"takes up to {MAX_UPLOAD_SAMPLES} samples in all")
        out_of_range = AppError(f"{upload.filename} holds samples that are not finite or beyond "
                                f"+-{MAX_UPLOAD_PEAK:g} (float audio is +-1)")
        try:
            audio = audio_io.read_audio(path, rate)
        except audio_io.NonFiniteAudio:
            raise out_of_range from None
        except ValueError:
            raise AppError(f"{upload.filename} is not an audio file this app can decode") from None
    if audio.size == 0:
        raise AppError(f"{upload.filename} holds no samples")
    if np.abs(audio).max() > MAX_UPLOAD_PEAK:
        raise out_of_range
    return audio


def denoise_request(denoiser: inference.Denoiser, form, files, samples: dict[str, Path],
                    noises: dict[str, Path]) -> dict:
    """samples/noises: the bundled files by name (bundled_samples(), bundled_noises())."""
    rate = denoiser.sample_rate
    clean = None
    if files.get("file") and files["file"].filename:
        noisy = read_upload(files["file"], rate)
    else:
        name = form.get("sample", "")
        if name not in samples:
            raise AppError("choose a bundled sample or upload a file")
        clean = audio_io.read_audio(samples[name], rate)
        noisy = clean
    noise_name = form.get("noise", "")
    snr = _number(form, "snr", 0.0, -20.0, 40.0)  # checked even when no noise is chosen (the form always sends it)
    if noise_name:
        if noise_name not in noises:
            raise AppError(f"unknown noise {noise_name!r}")
        noise = np.resize(audio_io.read_audio(noises[noise_name], rate), len(noisy))
        noisy = mix_at_snr(tf.constant(noisy), tf.constant(noise), tf.constant(snr, tf.float32))[0].numpy()
    strength = form.get("strength", "")
    limit = inference.strength_to_limit(None if strength in ("", "off") else _number(form, "strength", 0, 0, 60))
    denoised = inference.mix_strength(noisy, inference.denoise_array(denoiser, noisy), limit)
    signals = {"noisy": noisy, "denoised": denoised} | ({"clean": clean} if clean is not None and noise_name else {})
    return {
        **{name: wav_data_url(x, rate) for name, x in signals.items()},
        "spectrograms": png_data_url(lambda path: plots.waveform_and_spectrogram(signals, rate, path)),
        "seconds": len(noisy) / rate,
    }


# --- the app -------------------------------------------------------------------------------------

def create_app(models: Models, max_upload_mb: float = MAX_UPLOAD_MB) -> Flask:
    app = Flask(__name__, static_folder=None)
    samples, noises = bundled_samples(), bundled_noises()  # read once, looked up by name
    app.config["MAX_CONTENT_LENGTH"] = int(max_upload_mb * 1024 * 1024)

    @app.errorhandler(AppError)
    def app_error(error: AppError):
        return jsonify(error=str(error)), error.status

    @app.errorhandler(UsageError)
    def usage_error(error: UsageError):
        return jsonify(error=str(error)), 400

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_error):
        return jsonify(error=f"the request is larger than {max_upload_mb:g} MB"), 413

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        return jsonify(error=error.description or error.name), error.code

    @app.errorhandler(Exception)
    def unexpected(error: Exception):  # the page shows one line; the traceback stays in the server log
        log.exception("request failed")
        return jsonify(error=f"internal error: {type(error).__name__}"), 500

    @app.get("/")
    def index():
        return send_from_directory(STATIC, "index.html")

    @app.get("/static/<path:name>")
    def static_file(name: str):
        return send_from_directory(STATIC, name)

    @app.get("/api/status")
    def status():
        melody = models.melody
        return jsonify(
            melody={"ready": melody is not None, "problem": models.melody_problem,
                    "range": [melody.cfg.pitch_low, melody.cfg.pitch_high] if melody else None},
            denoiser={"ready": models.denoiser is not None, "problem": models.denoiser_problem},
            samples=sorted(samples), noises=sorted(noises),
            max_upload_mb=max_upload_mb)

    @app.post("/api/melody")
    def melody():
        if models.melody is None:
            raise AppError(f"no melody model: {models.melody_problem}", 503)
        request.max_content_length = MAX_MELODY_REQUEST_BYTES  # a chunked body is cut there (and fails to parse)
        try:
            body = request.get_json(silent=True)
        except RequestEntityTooLarge:
            raise AppError(f"a primer request is at most {MAX_MELODY_REQUEST_BYTES // 1024} KB", 413) from None
        except RecursionError:  # JSON nested thousands deep
            body = None
        if not isinstance(body, dict):
            raise AppError("send the primer as JSON")
        return jsonify(make_tune(models.melody, body))

    @app.post("/api/denoise")
    def denoise():
        if models.denoiser is None:
            raise AppError(f"no denoiser model: {models.denoiser_problem}", 503)
        return jsonify(denoise_request(models.denoiser, request.form, request.files, samples, noises))

    return app
