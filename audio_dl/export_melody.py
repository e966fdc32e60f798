"""Melody model exports: SavedModel (TF Serving) with `generate` and `one_step` signatures, and a
builtin-ops TFLite one-step model with explicit LSTM state tensors. Written atomically, verified.

    BASE/<N>/saved_model.pb + variables/   serving_default = generate:
        primer int32 [n], temperature float32 [], top_k int32 [], seed int32 [], max_steps int32 []
        -> tokens int32 [m] (the continuation; ends with END when the tune ended by itself)
      one_step: token int32 [B], state_h_i/state_c_i float32 [B, units] -> logits [B, V], next_state_*
      score: tokens int32 [B, T] (START first, PAD 0 after the end) -> logits [B, T, V] (teacher forcing)
    BASE/<N>/melody_one_step.tflite        the one-step model at batch 1
    BASE/<N>/config.json, MODEL_CARD.md, provenance.json
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from audio_dl import midi_io
from audio_dl.atomic import staged_folder
from audio_dl.compose import export_scorer, keras_scorer, load_melody_export
from audio_dl.config import MelodyConfig, save_config
from audio_dl.errors import UsageError
from audio_dl.export import (
    SAVED_MODEL_TOLERANCE,
    TFLITE_TOLERANCE,
    ExportError,
    convert_tflite,
    untracked_archive,
    write_provenance,
)
from audio_dl.litert import signature_runner
from audio_dl.models.melody import MelodySampler, build_folknet, one_step_from, state_names, vocab_size

ONE_STEP_TFLITE_NAME = "melody_one_step.tflite"


def write_melody_saved_model(model: keras.Model, one_step: keras.Model, cfg: MelodyConfig,
                             path: Path) -> MelodySampler:
    sampler = MelodySampler(one_step, cfg)
    archive = untracked_archive()
    generate_spec = list(sampler.generate.input_signature)
    archive.add_endpoint("serving_default", sampler.generate_tokens, input_signature=generate_spec)
    archive.add_endpoint("generate", sampler.generate_tokens, input_signature=generate_spec)
    step_spec = {t.name: tf.TensorSpec(t.shape, t.dtype, name=t.name) for t in one_step.inputs}
    archive.add_endpoint("one_step", lambda inputs: one_step(inputs, training=False), input_signature=[step_spec])
    archive.add_endpoint("score", lambda tokens: {"logits": model(tokens, training=False)["logits"]},
                         input_signature=[tf.TensorSpec([None, None], tf.int32, name="tokens")])
    archive.write_out(str(path), verbose=False)
    return sampler


def _token_walk(cfg: MelodyConfig, steps: int = 24) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(midi_io.START, vocab_size(cfg), steps).astype(np.int32)


def _run_steps(step_fn, tokens: np.ndarray, cfg: MelodyConfig) -> np.ndarray:
    """Logits [steps, V] of a one-step function fed `tokens` one by one, states carried."""
    states = {name: np.zeros((1, cfg.lstm_units), np.float32) for name in state_names(cfg)}
    logits = []
    for token in tokens:
        out = step_fn({"token": np.array([token], np.int32), **states})
        states = {name: np.asarray(out[f"next_{name}"], np.float32) for name in state_names(cfg)}
        logits.append(np.asarray(out["logits"])[0])
    return np.array(logits)


def _check_primer(cfg: MelodyConfig) -> np.ndarray:
    """Two notes (a whole tone apart where the range holds one), held, then a rest: a primer of any vocabulary."""
    second = midi_io.FIRST_NOTE_TOKEN + min(2, vocab_size(cfg) - midi_io.FIRST_NOTE_TOKEN - 1)
    return np.array([midi_io.FIRST_NOTE_TOKEN, midi_io.HOLD, second, midi_io.REST], np.int32)


def verify_melody_export(model: keras.Model, one_step: keras.Model, sampler: MelodySampler, cfg: MelodyConfig,
                         version_dir: Path) -> dict:
    """The trained model's logits over a token walk (the whole sequence at once) vs the Keras and
    SavedModel `one_step` models and the TFLite model fed it token by token, and the SavedModel's
    `generate` vs the in-process sampler (same seed -> same tokens)."""
    tokens = _token_walk(cfg)
    expected = model(tokens[np.newaxis], training=False)["logits"].numpy()[0]
    stepped = _run_steps(lambda inputs: one_step(inputs, training=False), tokens, cfg)
    loaded = tf.saved_model.load(str(version_dir))
    served = _run_steps(lambda inputs: loaded.signatures["one_step"](
        **{k: tf.constant(v) for k, v in inputs.items()}), tokens, cfg)
    runner = signature_runner(version_dir / ONE_STEP_TFLITE_NAME)
    lite = _run_steps(lambda inputs: runner(**inputs), tokens, cfg)
    arguments = dict(primer=tf.constant(_check_primer(cfg)), temperature=tf.constant(1.0),
                     top_k=tf.constant(0), seed=tf.constant(3), max_steps=tf.constant(64))
    same_tokens = np.array_equal(loaded.signatures["generate"](**arguments)["tokens"].numpy(),
                                 sampler.generate(**arguments)["tokens"].numpy())
    scored = loaded.signatures["score"](tokens=tf.constant(tokens[np.newaxis]))["logits"].numpy()[0]
    checks = {"keras_one_step_max_abs_error": float(np.abs(stepped - expected).max()),
              "saved_model_one_step_max_abs_error": float(np.abs(served - expected).max()),
              "saved_model_score_max_abs_error": float(np.abs(scored - expected).max()),
              "tflite_one_step_max_abs_error": float(np.abs(lite - expected).max()),
              "generate_matches_in_process": bool(same_tokens),
              "tflite_kilobytes": round((version_dir / ONE_STEP_TFLITE_NAME).stat().st_size / 1024, 1)}
    if not (max(checks["keras_one_step_max_abs_error"], checks["saved_model_one_step_max_abs_error"],
                checks["saved_model_score_max_abs_error"]) <= SAVED_MODEL_TOLERANCE
            and checks["tflite_one_step_max_abs_error"] <= TFLITE_TOLERANCE and same_tokens):
        raise ExportError(f"melody export does not match the Keras model: {checks}")
    return checks


def melody_from_export(version_dir: Path) -> tuple[keras.Model, MelodyConfig]:
    """The Keras folkNet of an exported version, its weights read back from the SavedModel by name
    and checked against the export's `score` signature. UsageError for a folder that is not a
    melody export or whose weights do not fit its config.json."""
    loaded, cfg, version_dir = load_melody_export(version_dir)
    model = build_folknet(cfg)
    values = {v.name.removesuffix(":0"): v.numpy() for v in loaded._all_variables}  # noqa: SLF001
    missing = [w.path for w in model.weights if w.path not in values or values[w.path].shape != tuple(w.shape)]
    if missing:
        raise UsageError(f"{version_dir}: the SavedModel does not hold the weights its config.json describes "
                         f"(e.g. {missing[0]})")
    for weight in model.weights:
        weight.assign(values[weight.path])
    tokens = _token_walk(cfg)[None]
    error = np.abs(keras_scorer(model)(tokens) - export_scorer(loaded)(tokens)).max()
    if error > SAVED_MODEL_TOLERANCE:
        raise UsageError(f"{version_dir}: the weights read back do not reproduce its SavedModel (max difference "
                         f"{error:.3g}); its config.json may not be the one it was exported with")
    return model, cfg


def export_melody(model: keras.Model, cfg: MelodyConfig, version_dir: Path, model_card: str,
                  provenance: dict, replace: bool = False) -> dict:
    """SavedModel + one-step TFLite + config + card into `version_dir`, atomically and verified
    (replace=True: in place of an existing one, once the new one is complete)."""
    version_dir = Path(version_dir)
    if version_dir.exists() and not replace:
        raise UsageError(f"{version_dir} already exists; choose another version")
    serving = build_folknet(cfg)  # a fresh model: no optimizer state in the export
    serving.set_weights(model.get_weights())
    # the one-step models share the serving model's layers: the SavedModel stores the weights once
    one_step, one_step_batch1 = one_step_from(serving, cfg), one_step_from(serving, cfg, batch_size=1)
    with staged_folder(version_dir, replace=replace) as staging:
        sampler = write_melody_saved_model(serving, one_step, cfg, staging)
        (staging / ONE_STEP_TFLITE_NAME).write_bytes(
            convert_tflite(one_step_batch1, output_keys=tuple(one_step_batch1.output.keys())))
        save_config(cfg, staging / "config.json")
        checks = verify_melody_export(model, one_step, sampler, cfg, staging)
        (staging / "MODEL_CARD.md").write_text(model_card.replace("{export_checks}", json.dumps(checks)))
        write_provenance(staging, provenance, model, cfg)
    return checks
