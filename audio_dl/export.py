"""Exports: SavedModel (TF Serving layout) + builtin-ops TFLite, each verified right after writing.

An export is written into a temporary folder next to its destination and renamed into place
only after the SavedModel and the TFLite model have matched the Keras model on the same input;
an interrupted or failed export leaves nothing behind.

Version folders: `BASE/<N>/` holds `saved_model.pb` + `variables/` (what TF Serving loads),
`denoiser.tflite` (whole clips; `_int8`/`_fp16` quantised variants), `denoiser_streaming.tflite`
(one hop, explicit state; `_int8` variant), `config.json`, `MODEL_CARD.md` and `provenance.json`. TF Serving
serves the highest N; a version whose provenance says "shipped" is the project's released model,
and a user's run is only published above it on request (`python -m audio_dl.export publish`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from audio_dl import audio_io, cli, native_logs
from audio_dl.atomic import staged_file, staged_folder
from audio_dl.config import (RERUN_KEYS, ConfigError, DenoiserConfig, json_text, load_config, read_json_object,
                             save_config, to_dict)
from audio_dl.errors import UsageError
from audio_dl.litert import signature_runner
from audio_dl.models.denoiser import (
    build_denoiser,
    build_streaming_denoiser,
    copy_weights,
)
from audio_dl.models.melody import MelodySampler
from audio_dl.streaming import STREAMING_INT8_TFLITE_NAME, STREAMING_TFLITE_NAME, StreamingDenoiser

log = logging.getLogger(__name__)

# Stated tolerances (max absolute difference of the output waveform, audio in [-1, 1]).
SAVED_MODEL_TOLERANCE = 1e-5
TFLITE_TOLERANCE = 1e-4
TFLITE_NAME = "denoiser.tflite"


class ExportError(RuntimeError):
    """An export did not reproduce the Keras model within tolerance."""


# --- writing ---------------------------------------------------------------------------------

def untracked_archive() -> keras.export.ExportArchive:
    """An ExportArchive for endpoints only, without `track(model)`.

    `track` stores the Keras variable wrappers and the endpoints store the tf.Variables they
    capture: every weight would be written (and restored by TF Serving) twice (keras#23553).
    The captured variables alone restore the endpoints.
    """
    return keras.export.ExportArchive()


def write_saved_model(model: keras.Model, path: Path) -> None:
    """SavedModel with `serving_default`: waveform [batch, samples] float32 -> {"denoised": same}."""
    archive = untracked_archive()

    def serve(waveform):
        return {"denoised": model(waveform, training=False)["denoised"]}

    archive.add_endpoint("serving_default", serve,
                         input_signature=[tf.TensorSpec([None, None], tf.float32, name="waveform")])
    archive.write_out(str(path), verbose=False)


QUANTIZED_TFLITE_NAMES = {"dynamic_int8": "denoiser_int8.tflite", "float16": "denoiser_fp16.tflite"}


def convert_tflite(model: keras.Model, output_keys: Sequence[str] = ("denoised",),
                   quantization: str | None = None) -> bytes:
    """Builtin-ops-only TFLite flatbuffer of a fixed-shape model's `output_keys` outputs.

    quantization: None (float32), "dynamic_int8" (int8 weights, float activations) or "float16"
    (float16 weights).

    Goes through a temporary SavedModel: converting a concrete function of a Keras 3 model keeps
    its weights as uninitialised resource variables (READ_VARIABLE), which run as garbage.
    """
    specs = {t.name: tf.TensorSpec(t.shape, t.dtype, name=t.name) for t in model.inputs}

    def serve(inputs):
        outputs = model(inputs if len(inputs) > 1 else next(iter(inputs.values())), training=False)
        return {key: outputs[key] for key in output_keys}

    archive = untracked_archive()
    archive.add_endpoint("serving_default", serve, input_signature=[specs])
    with tempfile.TemporaryDirectory() as tmp:
        archive.write_out(tmp, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if quantization is not None:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantization == "float16":
            converter.target_spec.supported_types = [tf.float16]
        with native_logs.log_lines_dropped():  # a dozen "Ignored output_format." lines a model
            return converter.convert()


def convert_streaming(streaming: keras.Model, quantization: str | None = None) -> bytes:
    """A build_streaming_denoiser model with all its outputs (next states included) as TFLite;
    "dynamic_int8" reads a quarter of the weight bytes per hop, where a hop's time mostly goes."""
    return convert_tflite(streaming, tuple(streaming.output), quantization=quantization)


def run_tflite(model_path_or_bytes, inputs: dict[str, np.ndarray] | np.ndarray) -> dict[str, np.ndarray]:
    """Run a .tflite under ai_edge_litert (no Flex ops there) through its signature runner."""
    runner = signature_runner(model_path_or_bytes)
    if isinstance(inputs, np.ndarray):
        (name,) = runner.get_input_details().keys()
        inputs = {name: inputs}
    details = runner.get_input_details()
    outputs = runner(**{k: np.asarray(v, details[k]["dtype"]) for k, v in inputs.items()})
    return {k: np.array(v, copy=True) for k, v in outputs.items()}  # the buffers die with the interpreter


# --- verification ----------------------------------------------------------------------------

def verify_denoiser_export(model: keras.Model, version_dir: Path, cfg: DenoiserConfig) -> dict[str, float]:
    """Keras vs SavedModel (batch of 2, odd length), Keras vs TFLite (its fixed length) and Keras
    vs the streaming TFLite model run hop by hop past its whole memory. NaN fails too.

    Returns the max absolute differences; raises ExportError above the stated tolerances.
    """
    rng = np.random.default_rng(0)
    batch = _test_noise(rng, (2, cfg.sample_rate + 37))
    expected = model(batch, training=False)["denoised"].numpy()
    served = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    saved_error = float(np.abs(served(waveform=tf.constant(batch))["denoised"].numpy() - expected).max())

    clip = _test_noise(rng, (1, cfg.tflite_samples))
    expected_clip = model(clip, training=False)["denoised"].numpy()
    lite = run_tflite(version_dir / TFLITE_NAME, clip)["denoised"]
    tflite_error = float(np.abs(lite - expected_clip).max())
    stream = StreamingDenoiser(version_dir / STREAMING_TFLITE_NAME)
    past_memory = _past_memory_noise(rng, cfg)
    streamed = stream.denoise(past_memory[0])
    streaming_error = float(np.abs(streamed - model(past_memory, training=False)["denoised"].numpy()[0]).max())
    errors = {"saved_model_max_abs_error": saved_error, "tflite_max_abs_error": tflite_error,
              "streaming_tflite_max_abs_error": streaming_error,
              **streaming_int8_quality(version_dir, past_memory[0], streamed)}
    for quantization, name in QUANTIZED_TFLITE_NAMES.items():  # measured, not held to the tolerance
        quantized = run_tflite(version_dir / name, clip)["denoised"]
        errors[f"{quantization}_snr_db_vs_float"] = _snr_db(expected_clip, quantized)
        errors[f"{quantization}_kilobytes"] = _kilobytes(version_dir / name)
    errors["float32_kilobytes"] = _kilobytes(version_dir / TFLITE_NAME)
    if not (saved_error <= SAVED_MODEL_TOLERANCE and tflite_error <= TFLITE_TOLERANCE
            and streaming_error <= TFLITE_TOLERANCE):  # each compared: max(x, nan) is x
        raise ExportError(f"export does not match the Keras model: {errors} (tolerances "
                          f"{SAVED_MODEL_TOLERANCE}, {TFLITE_TOLERANCE})")
    return errors


def streaming_int8_quality(version_dir: Path, waveform: np.ndarray, float_output: np.ndarray | None = None,
                           int8_model: Path | None = None) -> dict[str, float]:
    """SNR (dB) of the int8 streaming model's output (`int8_model`, default: the export's) against
    the float one's (`float_output`, or computed here) on `waveform` [N], and its size (measured,
    not held to a tolerance)."""
    if float_output is None:
        float_output = StreamingDenoiser(version_dir / STREAMING_TFLITE_NAME).denoise(waveform)
    int8_model = int8_model or version_dir / STREAMING_INT8_TFLITE_NAME
    quantized = StreamingDenoiser(int8_model).denoise(waveform)
    return {"streaming_dynamic_int8_snr_db_vs_float": _snr_db(float_output, quantized),
            "streaming_dynamic_int8_kilobytes": _kilobytes(int8_model)}


def _test_noise(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """float32 Gaussian noise of standard deviation 0.1: the export checks' test signal."""
    return (0.1 * rng.standard_normal(shape)).astype(np.float32)


def _past_memory_noise(rng: np.random.Generator, cfg: DenoiserConfig) -> np.ndarray:
    """[1, N] test noise that runs a streaming model past its whole memory and 64 hops more: a
    state that rolls wrong shows only once it is full."""
    return _test_noise(rng, (1, (cfg.history_frames + 64) * cfg.hop_length + cfg.frame_length))


def _snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(reference**2) / (np.sum((estimate - reference) ** 2) + 1e-20)))


def _kilobytes(path: Path) -> float:
    return round(path.stat().st_size / 1024, 1)


def denoiser_from_export(version_dir: Path) -> tuple[keras.Model, DenoiserConfig]:
    """The Keras model (build_denoiser) of an exported version, with its weights read back from the
    SavedModel: the variables by name, the normalisation layers' means and variances from the
    tensors the endpoint captures, two per layer (their order is not recorded: the one that
    reproduces the SavedModel's output is kept). Raises UsageError for a folder that is not a
    denoiser export."""
    version_dir = cli.existing_folder(Path(version_dir), "an export folder")
    if serving_inputs(version_dir) != ("waveform",):
        raise UsageError(f"{version_dir} is not a denoiser export (its SavedModel does not take a waveform)")
    try:
        cfg = load_config(DenoiserConfig, version_dir / "config.json")
    except ConfigError as error:
        raise UsageError(f"{version_dir} is not a denoiser export: {error}") from None
    require_utf8_saved_model_path(version_dir)
    try:
        loaded = tf.saved_model.load(str(version_dir))
        served = loaded.signatures["serving_default"]
    except Exception as error:  # noqa: BLE001 - any failure means: not a complete export
        raise UsageError(f"{version_dir}: its SavedModel does not load ({type(error).__name__}: "
                         f"{str(error).splitlines()[0] if str(error) else ''})") from None
    model = build_denoiser(cfg)
    values = {v.name.removesuffix(":0"): v.numpy() for v in loaded._all_variables}  # noqa: SLF001
    for weight in model.weights:
        if weight.path in values:
            weight.assign(values[weight.path])
    statistics = [t.numpy() for t in served.captured_inputs if t.dtype == tf.float32]
    normalizations = [layer for layer in model.layers if isinstance(layer, keras.layers.Normalization)]
    missing = [w.path for w in model.trainable_weights if w.path not in values]
    if missing or len(statistics) != 2 * len(normalizations):
        raise UsageError(f"{version_dir}: the SavedModel does not hold this config's weights ({missing[:3]})")
    probe = _test_noise(np.random.default_rng(0), (1, cfg.sample_rate))
    expected = served(waveform=tf.constant(probe))["denoised"].numpy()
    for order in itertools.permutations(statistics):  # (mean, variance) of each layer in turn: 2 orders, or 24 for fcn16
        pairs = list(zip(order[::2], order[1::2]))
        if any(mean.size != np.prod(layer.adapt_mean.shape) or variance.size != np.prod(layer.adapt_variance.shape)
               or (variance < 0).any() for layer, (mean, variance) in zip(normalizations, pairs)):
            continue
        for layer, (mean, variance) in zip(normalizations, pairs):
            layer.adapt_mean.assign(mean.reshape(layer.adapt_mean.shape))
            layer.adapt_variance.assign(variance.reshape(layer.adapt_variance.shape))
            layer.finalize_state()
        if np.abs(model(probe, training=False)["denoised"].numpy() - expected).max() <= SAVED_MODEL_TOLERANCE:
            return model, cfg
    raise ExportError(f"{version_dir}: the weights read back do not reproduce the SavedModel")


def add_streaming_int8(version_dir: Path) -> dict[str, float]:
    """Write the int8 streaming model into an existing export (one made before it was part of every
    export), built from the weights read back from its SavedModel; returns its measured quality.
    An export that has one already is refused (it would change a published version)."""
    version_dir = Path(version_dir)
    target = version_dir / STREAMING_INT8_TFLITE_NAME
    if target.exists():  # before the SavedModel is loaded: that takes seconds
        raise UsageError(f"{version_dir} already has {STREAMING_INT8_TFLITE_NAME}")
    model, cfg = denoiser_from_export(version_dir)
    if not (version_dir / STREAMING_TFLITE_NAME).is_file():
        newest = version_dir.parent / str(max(versions(version_dir.parent))) if version_dir.name.isdigit() \
            else "BASE/<newest version>"
        raise UsageError(f"{version_dir} has no {STREAMING_TFLITE_NAME} to measure the int8 model against "
                         "(an export older than streaming); a new export holds both: "
                         f"`python -m audio_dl.export reexport {newest}` makes one")
    with staged_file(target) as staging:  # measured before it is committed: a failure leaves none
        staging.write_bytes(convert_streaming(build_streaming_denoiser(cfg, weights_from=model), "dynamic_int8"))
        quality = streaming_int8_quality(version_dir, _past_memory_noise(np.random.default_rng(0), cfg)[0],
                                         int8_model=staging)
    return quality


# --- the whole export ------------------------------------------------------------------------

def export_denoiser(model: keras.Model, cfg: DenoiserConfig, version_dir: Path, model_card: str,
                    provenance: dict, replace: bool = False) -> dict[str, float]:
    """Write SavedModel + TFLite (whole clip and streaming) + config + card into `version_dir`
    atomically (replace=True: in place of an existing one, once the new one is complete); returns
    the measured differences to the Keras model."""
    serving, tflite_twin = build_denoiser(cfg), build_denoiser(cfg, tflite=True)
    for twin in (serving, tflite_twin):  # fresh models: no optimizer state in the exports
        copy_weights(model, twin)
    streaming = build_streaming_denoiser(cfg, weights_from=model)
    version_dir = Path(version_dir)
    if version_dir.exists() and not replace:
        raise UsageError(f"{version_dir} already exists; choose another version")
    with staged_folder(version_dir, replace=replace) as staging:
        write_saved_model(serving, staging)
        (staging / TFLITE_NAME).write_bytes(convert_tflite(tflite_twin))
        (staging / STREAMING_TFLITE_NAME).write_bytes(convert_streaming(streaming))
        (staging / STREAMING_INT8_TFLITE_NAME).write_bytes(convert_streaming(streaming, "dynamic_int8"))
        for quantization, name in QUANTIZED_TFLITE_NAMES.items():
            (staging / name).write_bytes(convert_tflite(tflite_twin, quantization=quantization))
        save_config(cfg, staging / "config.json")  # the streaming loop reads it
        errors = verify_denoiser_export(model, staging, cfg)
        (staging / "MODEL_CARD.md").write_text(model_card.replace("{export_errors}", json.dumps(errors)))
        write_provenance(staging, provenance, model, cfg)
    return errors


def model_digest(model: keras.Model, cfg) -> str:
    """sha256 of a model's weights and of the config keys that shape its exports: the same for
    every export of one trained model (unlike fingerprint.pb, which changes with each SavedModel
    written). Of the keys a rerun may change, only tflite_seconds (the TFLite input size) counts."""
    ignored = RERUN_KEYS - {"tflite_seconds"}
    digest = hashlib.sha256(json_text({k: v for k, v in to_dict(cfg).items() if k not in ignored}).encode())
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()


def write_provenance(version_dir: Path, provenance: dict, model: keras.Model, cfg) -> None:
    """version_dir/provenance.json: where the export comes from, and model_sha256 (model_digest)."""
    text = json.dumps({**provenance, "model_sha256": model_digest(model, cfg)}, indent=2) + "\n"
    (version_dir / "provenance.json").write_text(text)


def versions(base: Path) -> dict[int, dict]:
    """{version: provenance} of the complete version folders under a TF Serving base path."""
    return {int(child.name): read_provenance(child) for child in Path(base).glob("*")
            if child.is_dir() and child.name.isdigit() and (child / "saved_model.pb").is_file()}


_WARNED_PROVENANCE: set[tuple[str, str]] = set()  # (file, sha256 of its bytes) already warned about


def read_provenance(version_dir: Path) -> dict:
    """version_dir/provenance.json, or {} when there is none; one that is not a JSON object (a hand
    edit gone wrong) is {} too, with a warning naming it: once a command (export.main) for the
    same file and content, however often it reads it (publish reads each version under --base several times)."""
    path = Path(version_dir) / "provenance.json"
    if not path.is_file():
        return {}
    try:
        return read_json_object(path, "provenance")
    except ConfigError:  # not JSON, not UTF-8 or not an object
        seen = (os.path.abspath(path), hashlib.sha256(path.read_bytes()).hexdigest())
        if seen not in _WARNED_PROVENANCE:
            _WARNED_PROVENANCE.add(seen)
            log.warning("%s is not a JSON object: read as no provenance", path)
        return {}


def require_utf8_saved_model_path(path: Path, alternative: str = "", writes: bool = False) -> None:
    """UsageError for a SavedModel path that TensorFlow cannot take (not UTF-8, as a Latin-1 folder
    of an old archive). `alternative` ends the message (what to do instead of moving it)."""
    doing = "writes a SavedModel only to" if writes else "loads a SavedModel only from"
    audio_io.require_utf8_path(path, f"{{path}}: TensorFlow {doing} a UTF-8 path; move "
                                     f"{'the base path' if writes else 'it'}{alternative}")


def newest_export(path: Path) -> Path | None:
    """The SavedModel folder `path` stands for: itself, the highest version under it (a TF Serving
    base path) or under its export/ (a training run directory); None when it holds none."""
    if (path / "saved_model.pb").is_file():
        return path
    for base in (path, path / "export"):
        found = versions(base)
        if found:
            return base / str(max(found))
    return None


def shipped_versions(base: Path) -> list[int]:
    return sorted(v for v, p in versions(base).items() if p.get("source") == "shipped")


def next_version(base: Path) -> int:
    return max(versions(base), default=0) + 1


def saved_model_signatures(version_dir: Path):
    """The SignatureDefs (name -> SignatureDef proto map) of the SavedModel in version_dir, read from
    saved_model.pb with nothing loaded; UsageError if the file is missing or does not parse."""
    from google.protobuf.message import DecodeError  # noqa: PLC0415 - only publishing and serving read the proto
    from tensorflow.core.protobuf import saved_model_pb2  # noqa: PLC0415

    path = Path(version_dir) / "saved_model.pb"
    if not path.is_file():
        raise UsageError(f"{version_dir} is not an exported model (no saved_model.pb)")
    saved_model = saved_model_pb2.SavedModel()
    try:
        saved_model.ParseFromString(path.read_bytes())
    except DecodeError:
        raise UsageError(f"{path} is not a readable SavedModel (the file is corrupt)") from None
    return saved_model.meta_graphs[0].signature_def if saved_model.meta_graphs else {}


def serving_inputs(version_dir: Path) -> tuple[str, ...]:
    """Input names of the SavedModel's serving_default signature; UsageError if there is none."""
    signatures = saved_model_signatures(version_dir)
    if "serving_default" not in signatures:
        raise UsageError(f"{version_dir} is not an exported model (its SavedModel has no serving_default signature)")
    return tuple(sorted(signatures["serving_default"].inputs))


def published_as(version_dir: Path, base: Path) -> Path | None:
    """The version folder under `base` holding the same model, if any: the same model_sha256 in
    provenance.json (model_digest: however often it is exported) where both record one, else (an
    export made before it was recorded, or a provenance.json broken by hand) the same fingerprint.pb:
    a copy of the same export only, as TensorFlow writes a new one (random uuid, order-dependent
    hashes) with every SavedModel, even of the same weights."""
    mine = _model_identity(Path(version_dir))
    if mine == (None, None):
        return None
    return next((c for c in (Path(base) / str(n) for n in sorted(versions(base)))
                 if _same_model(mine, _model_identity(c))), None)


def _model_identity(version_dir: Path) -> tuple[str | None, bytes | None]:
    """(model_sha256 of its provenance.json, fingerprint.pb's bytes), each None where missing."""
    fingerprint = version_dir / "fingerprint.pb"
    return (read_provenance(version_dir).get("model_sha256"),
            fingerprint.read_bytes() if fingerprint.is_file() else None)


def _same_model(one: tuple, other: tuple) -> bool:
    if one[0] and other[0]:
        return one[0] == other[0]
    return one[1] is not None and one[1] == other[1]


def publish(version_dir: Path, base: Path, version: int | None = None, shipped: bool = False) -> Path:
    """Copy an exported version folder under `base` as `version` (default: the next free number);
    shipped=True marks it as the project's released model (provenance "source": "shipped").
    Refused: a folder without a readable SavedModel and config.json, a model of another kind than
    the versions already under `base`, and a model already published there (published_as)."""
    version_dir, base = Path(version_dir), Path(base)
    inputs = serving_inputs(version_dir)
    if not (version_dir / "config.json").is_file():
        raise UsageError(f"{version_dir} is not an exported model of this project (no config.json)")
    _require_same_kind(base, inputs, str(version_dir), "--base")
    target = base / str(version or next_version(base))
    if target.exists():
        raise UsageError(f"{target} already exists")
    published = published_as(version_dir, base)
    if published is not None:
        raise UsageError(f"{version_dir} is already published as {published}")
    with staged_folder(target) as staging:
        shutil.copytree(version_dir, staging, dirs_exist_ok=True)
        if shipped:
            provenance = {**read_provenance(version_dir), "source": "shipped", "published_from": str(version_dir)}
            (staging / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
    return target


def will_publish(base: Path, policy: str) -> bool:
    """The training CLIs' rule: policy "always" publishes, "auto" publishes unless a shipped
    version is there, "never" does not."""
    return policy == "always" or (policy == "auto" and not shipped_versions(base))


# serving_default inputs of each family's exports, as serving_inputs reads them back (sorted):
# the denoiser's keras.Input and the melody sampler's generate signature
SERVING_INPUTS = {"denoiser": ("waveform",),
                  "melody": tuple(sorted(spec.name for spec in MelodySampler.generate.input_signature))}


def export_family(version_dir: Path) -> str:
    """The family (a SERVING_INPUTS key) of an exported model, from its serving inputs."""
    inputs = serving_inputs(version_dir)
    family = next((name for name, names in SERVING_INPUTS.items() if names == inputs), None)
    if family is None:
        raise UsageError(f"{version_dir} takes {', '.join(inputs)}, neither a denoiser nor a melody model: give --base")
    return family


def check_publish_target(base: Path, policy: str, family: str) -> None:
    """Before training: UsageError if the run will publish (will_publish) into a base path this
    process cannot write into, or, unless policy is "never" (the base is not used), if the base
    holds models of another family (SERVING_INPUTS): the run would neither publish there nor
    be publishable there later."""
    if will_publish(base, policy):
        cli.writable_folder(base)
    if policy != "never":
        _require_same_kind(base, SERVING_INPUTS[family], f"a {family} model", "--export-base")


def _base_inputs(base: Path) -> tuple[str, ...] | None:
    """Serving inputs of the newest version under `base`; None while it holds none."""
    existing = versions(base)
    return serving_inputs(base / str(max(existing))) if existing else None


def _require_same_kind(base: Path, inputs: tuple[str, ...], what: str, flag: str) -> None:
    """UsageError unless the newest version under `base` (if any) takes the same serving inputs."""
    base_inputs = _base_inputs(base)
    if base_inputs not in (None, inputs):
        raise UsageError(f"{what} takes {', '.join(inputs)}; the models in {base} take "
                         f"{', '.join(base_inputs)}: publish it under another {flag}")


def publish_run(export_dir: Path, run_dir: Path, base: Path, policy: str) -> Path | None:
    """Publish a finished run as will_publish says; prints what happened (and the command to
    publish later: under `base`, or its family's default base if `base` holds another family)."""
    if will_publish(base, policy):
        published = published_as(export_dir, base)
        if published is not None:
            print(f"already published as {published}")
            return published
        target = publish(export_dir, base)
        print(f"published as {target} (TF Serving base path {base})")
        return target
    shipped = shipped_versions(base)
    why = f"the shipped model is version {shipped[-1]}" if policy != "never" and shipped else "--publish never"
    try:
        same_kind = _base_inputs(base) in (None, serving_inputs(export_dir))
    except UsageError:  # a base whose newest version does not load: the hint keeps --base, the run is done
        same_kind = True
    print(f"not published ({why}); to serve this run as a new version:\n"
          f"  python -m audio_dl.export publish {run_dir}{f' --base {base}' if same_kind else ''}")
    return None


def reexport(version_dir: Path) -> Path:
    """Export the newest version under a base path again with this code, from its weights read
    back from its SavedModel, as the next version: what exporting gained since (such as the melody
    model's input checks) without retraining. Only the newest: the copy becomes the version TF
    Serving and the tools pick, so re-exporting an older one would silently replace what is served.
    The card carries over with this export's checks in place of the old ones; provenance.json
    with the version it came from. Returns the new version folder."""
    from audio_dl.export_melody import export_melody, melody_from_export  # noqa: PLC0415 - one-way imports

    version_dir = cli.existing_folder(Path(version_dir), "an export folder")
    denoiser = serving_inputs(version_dir) == SERVING_INPUTS["denoiser"]
    folder = Path(os.path.abspath(version_dir))  # its number and base path also for "." or "3/"
    numbered = versions(folder.parent)
    if not folder.name.isdigit() or int(folder.name) not in numbered:
        raise UsageError(f"{version_dir} is not a version folder of a TF Serving base path (a folder named by its "
                         "number, such as saved_models/denoiser/4): a re-export becomes the next version beside it")
    newest = max(numbered)
    if folder.name != str(newest):
        raise UsageError(f"{version_dir} is not the newest version under {folder.parent} (that is {newest}); "
                         "a re-export becomes the version served, so only the newest is re-exported")
    target = (version_dir.parent if version_dir.name == folder.name else folder.parent) / str(newest + 1)
    require_utf8_saved_model_path(folder.parent / target.name, writes=True)  # absolute: "." loads from any folder
    model, cfg = denoiser_from_export(version_dir) if denoiser else melody_from_export(version_dir)
    provenance = read_provenance(version_dir)
    digest = model_digest(model, cfg)
    if provenance.get("model_sha256", digest) != digest:
        raise UsageError(f"{version_dir}: the weights read back are not those its provenance.json records")
    card_file = version_dir / "MODEL_CARD.md"
    note = (f"Version {newest} re-exported with `python -m audio_dl.export reexport {version_dir}`: its weights "
            f"(model_sha256 in provenance.json), written and checked by a later version of the exporter.")
    card = _card_with_new_checks(card_file.read_text() if card_file.is_file() else "# Model\n", note,
                                 "{export_errors}" if denoiser else "{export_checks}")
    write = export_denoiser if denoiser else export_melody
    write(model, cfg, target, card, {**provenance, "reexported_from_version": newest})
    return target


def _card_with_new_checks(card: str, note: str, placeholder: str) -> str:
    """A model card whose "## Export checks" section starts with `note` and has `placeholder` in
    place of its old checks (the first JSON object there); the section is added if missing."""
    head, heading, section = card.partition("## Export checks\n")
    if not heading:
        return f"{card.rstrip()}\n\n## Export checks\n{note}\n{placeholder}\n"
    section, replaced = re.subn(r'\{"[^{}]*\}', lambda _: placeholder, section, count=1)
    return f"{head}{heading}{note}{'' if replaced else ' ' + placeholder}\n{section}"


# --- CLI: python -m audio_dl.export publish RUN_EXPORT [--base ...] | add-streaming-int8 DIR | reexport DIR

def main(argv: Sequence[str] | None = None) -> int:
    _WARNED_PROVENANCE.clear()  # each command warns once of a broken provenance.json (a notebook runs several)
    parser = cli.ArgumentParser(prog="python -m audio_dl.export",
                                description="Publish a run's exported model as a new TF Serving version, "
                                            "add the int8 streaming model to an earlier export, or export "
                                            "an earlier version's weights again with this code.")
    commands = parser.add_subparsers(dest="command", required=True)
    pub = commands.add_parser("publish", help="copy a run's newest export (or a version folder) to BASE/<N>")
    pub.add_argument("source", type=cli.given_path,
                     help="a run directory, its export/ folder, a TF Serving base path (its newest version) "
                          "or an exported version folder")
    pub.add_argument("--base", type=cli.folder_path,
                     help="TF Serving base path (default: saved_models/denoiser for a denoiser, "
                          "saved_models/melody for a melody model)")
    pub.add_argument("--version", type=int, help="version number (default: highest + 1)")
    pub.add_argument("--ship", action="store_true",
                     help="mark it as the project's shipped model (maintainers; commit it with git add -f)")
    add = commands.add_parser("add-streaming-int8",
                              help="write denoiser_streaming_int8.tflite into an export made without it")
    add.add_argument("version_dir", type=cli.given_path,
                     help="an exported version folder, e.g. saved_models/denoiser/4")
    again = commands.add_parser("reexport", help="export the newest version's weights again with this code, as "
                                                 "the next version beside it (no retraining)")
    again.add_argument("version_dir", type=cli.given_path,
                       help="the newest version folder under a base path, e.g. saved_models/melody/6")
    args = parser.parse_args(argv)
    if args.command == "reexport":
        print(f"re-exported {args.version_dir} as {reexport(args.version_dir)}")
        return 0
    if args.command == "add-streaming-int8":
        quality = add_streaming_int8(args.version_dir)
        print(f"wrote {args.version_dir / STREAMING_INT8_TFLITE_NAME}: {json.dumps(quality)}")
        return 0
    if args.version is not None and args.version < 1:
        raise UsageError("--version must be >= 1")
    source = args.source
    if not source.exists():
        raise UsageError(f"path does not exist: {source}")
    if not (source / "saved_model.pb").is_file():  # a training run or its export/: the newest export
        newest = newest_export(source)
        if newest is None:
            raise UsageError(f"{source} holds no exported model")
        source = newest
    base = args.base or cli.family_base(export_family(source))
    target = publish(source, base, args.version, shipped=args.ship)
    print(f"published {source} as {target}; TF Serving now serves version {max(versions(base))} of {base}")
    return 0


main.prog = "python -m audio_dl.export"

if __name__ == "__main__":
    raise SystemExit(cli.run_main(main))
