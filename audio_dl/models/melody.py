"""folkNet: token embedding -> LSTM(250) -> dropout -> LSTM(250) -> dropout -> dense over the vocabulary.

    build_folknet(cfg)       training model: tokens [B, T] int32 -> {"logits": [B, T, V]}
    one_step_from(model)     one token with explicit LSTM states (TFLite builtins, O(1) per note),
                             sharing the model's layers: token [B] int32, state_h_i/state_c_i
                             [B, units] -> {"logits": [B, V], "next_state_h_i", "next_state_c_i"}
    MelodySampler(one_step)  tf.Module whose `generate` (primer, temperature, top_k, seed,
                             max_steps -> tokens) runs the whole loop in the graph

The softmax lives in the loss (from logits) and in sampling (logits / temperature).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from audio_dl import midi_io
from audio_dl.config import MelodyConfig


def vocab_size(cfg: MelodyConfig) -> int:
    return midi_io.FIRST_NOTE_TOKEN + cfg.pitch_high - cfg.pitch_low + 1


def build_folknet(cfg: MelodyConfig) -> keras.Model:
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(vocab_size(cfg), cfg.embedding_dim, mask_zero=True, name="embedding")(tokens)
    for i in range(1, cfg.lstm_layers + 1):
        x = keras.layers.LSTM(cfg.lstm_units, return_sequences=True, name=f"lstm_{i}")(x)
        x = keras.layers.Dropout(cfg.dropout, name=f"dropout_{i}")(x)
    logits = keras.layers.Dense(vocab_size(cfg), dtype="float32", name="logits")(x)
    return keras.Model(tokens, {"logits": logits}, name="folknet")


def state_names(cfg: MelodyConfig) -> list[str]:
    return [f"state_{kind}_{i}" for i in range(1, cfg.lstm_layers + 1) for kind in ("h", "c")]


def one_step_from(model: keras.Model, cfg: MelodyConfig, batch_size: int | None = None) -> keras.Model:
    """A one-step model built on the trained folknet's own layers — its embedding, the cells of its
    LSTMs (each in an RNN unrolled over one step) and its output layer — so it shares their weights
    (an export stores them once). It converts to builtin TFLite ops."""
    token = keras.Input((), batch_size=batch_size, dtype="int32", name="token")
    states = {name: keras.Input((cfg.lstm_units,), batch_size=batch_size, name=name) for name in state_names(cfg)}
    x = model.get_layer("embedding")(token)  # [B, E]
    x = keras.ops.expand_dims(x, 1)  # [B, 1, E] (and the embedding's padding mask, meaningless here, is gone)
    outputs = {}
    for i in range(1, cfg.lstm_layers + 1):
        step = keras.layers.RNN(model.get_layer(f"lstm_{i}").cell, return_sequences=True, return_state=True,
                                unroll=True, name=f"lstm_{i}")
        x, h, c = step(x, initial_state=[states[f"state_h_{i}"], states[f"state_c_{i}"]])
        outputs[f"next_state_h_{i}"], outputs[f"next_state_c_{i}"] = h, c
    logits = model.get_layer("logits")(x)  # [B, 1, V]
    outputs["logits"] = keras.layers.Reshape((vocab_size(cfg),), name="step_logits")(logits)
    return keras.Model([token, *states.values()], outputs, name="folknet_one_step")


def sample_logits(logits, temperature, top_k, seed):
    """One token per row of logits [B, V]: softmax(logits / temperature), restricted to the top_k
    tokens when top_k > 0; PAD and START are never drawn, at any temperature > 0. Stateless: seed
    is int32 [2]."""
    vocab = tf.shape(logits)[-1]
    never = tf.one_hot(midi_io.PAD, vocab, on_value=True, off_value=False) | tf.one_hot(
        midi_io.START, vocab, on_value=True, off_value=False)
    excluded = tf.constant(-float("inf"), logits.dtype)
    logits = tf.where(never, excluded, logits)
    # the best allowed token scales to 0 and the rest below it: no overflow at a tiny temperature;
    # a subnormal one is raised to the least normal float (CPUs flush subnormals to zero: 0 / 0)
    temperature = tf.maximum(temperature, np.finfo(logits.dtype.as_numpy_dtype).tiny)
    logits = (logits - tf.reduce_max(logits, axis=-1, keepdims=True)) / temperature
    k = tf.where(top_k > 0, tf.minimum(top_k, vocab), vocab)
    kth = tf.math.top_k(logits, k=k).values[:, -1:]
    logits = tf.where(logits < kth, excluded, logits)
    return tf.cast(tf.random.stateless_categorical(logits, 1, seed)[:, 0], tf.int32)


class MelodySampler(tf.Module):
    """Continue a primer with a one-step model, all in one graph (what the SavedModel serves).

    generate(primer, temperature, top_k, seed, max_steps) -> tokens [n] int32: the generated
    tokens only (not the primer), ending with END if the model ended the tune within max_steps.
    `primer` holds grid tokens (no START/END); the sampler prepends START.
    """

    def __init__(self, one_step: keras.Model, cfg: MelodyConfig):
        super().__init__()
        self.one_step = one_step
        self.state_names = state_names(cfg)
        self.units = cfg.lstm_units
        self.vocab_size = vocab_size(cfg)

    @tf.autograph.experimental.do_not_convert
    def _checked(self, primer, temperature, top_k, max_steps):
        """`primer`, once the inputs a TF Serving client sends are checked: an InvalidArgumentError
        naming the input, instead of an index error deep in the loop or a silently wrong tune."""
        checks = [
            tf.debugging.Assert((temperature > 0.0) & tf.math.is_finite(temperature),  # inf: every logit 0, top_k moot
                                ["temperature must be a finite number > 0; got", temperature]),
            tf.debugging.Assert(top_k >= 0, ["top_k must be >= 0 (0: no limit); got", top_k]),
            tf.debugging.Assert(max_steps >= 0, ["max_steps must be >= 0; got", max_steps]),
            tf.debugging.Assert(tf.reduce_all((primer >= midi_io.REST) & (primer < self.vocab_size)),
                                [f"primer tokens must be in [{midi_io.REST}, {self.vocab_size}) "
                                 "(REST, HOLD or a note; no PAD, START or END); got", primer], summarize=16),
        ]
        with tf.control_dependencies(checks):
            return tf.identity(primer)

    @tf.autograph.experimental.do_not_convert
    def _zero_states(self):
        return {name: tf.zeros([1, self.units]) for name in self.state_names}

    @tf.autograph.experimental.do_not_convert
    def _step(self, token, states):
        outputs = self.one_step({"token": tf.reshape(token, [1]), **states}, training=False)
        return (tf.reshape(outputs["logits"], [1, -1]),  # batch 1, static shapes for the graph loop
                {name: tf.reshape(outputs[f"next_{name}"], [1, self.units]) for name in self.state_names})

    @tf.function(input_signature=[
        tf.TensorSpec([None], tf.int32, name="primer"), tf.TensorSpec([], tf.float32, name="temperature"),
        tf.TensorSpec([], tf.int32, name="top_k"), tf.TensorSpec([], tf.int32, name="seed"),
        tf.TensorSpec([], tf.int32, name="max_steps")])
    def generate(self, primer, temperature, top_k, seed, max_steps):
        return self.generate_tokens(primer, temperature, top_k, seed, max_steps)

    @tf.autograph.experimental.do_not_convert
    def generate_tokens(self, primer, temperature, top_k, seed, max_steps):
        """The loop with explicit tf.while_loop (also traced by exporters without autograph)."""
        primer = self._checked(primer, temperature, top_k, max_steps)
        logits, states = self._step(tf.constant([midi_io.START]), self._zero_states())

        def feed(i, logits, states):  # the primer, one O(1) step per token
            logits, states = self._step(primer[i], states)
            return i + 1, logits, states

        _, logits, states = tf.while_loop(lambda i, *_: i < tf.shape(primer)[0], feed,
                                          (tf.constant(0), logits, states))

        def sample(step, token, logits, states, generated):
            token = sample_logits(logits, temperature, top_k, tf.stack([seed, step]))
            logits, states = self._step(token, states)
            return step + 1, token, logits, states, generated.write(step, token[0])

        def going_on(step, token, *_):
            return (step < max_steps) & (token[0] != midi_io.END)

        generated = tf.TensorArray(tf.int32, size=0, dynamic_size=True, element_shape=[])
        _, _, _, _, generated = tf.while_loop(
            going_on, sample, (tf.constant(0), tf.constant([midi_io.PAD]), logits, states, generated))
        return {"tokens": generated.stack()}
