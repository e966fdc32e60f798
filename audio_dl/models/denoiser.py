"""Speech denoisers: waveform in, waveform out, with the STFT, the model and the inverse STFT in
one graph.

    build_denoiser(cfg)               Keras model for training/serving (kapre STFT, any length)
    build_denoiser(cfg, tflite=True)  the same weights in builtin-TFLite ops (kapre STFTTflite,
                                      fixed [1, cfg.tflite_samples] input)

Outputs: {"denoised": [B, N] waveform, "magnitude": [B, T, F] estimated clean magnitude}.
"""

from __future__ import annotations

import functools
import math

import keras

from audio_dl import layers as L
from audio_dl.config import DenoiserConfig


def build_denoiser(cfg: DenoiserConfig, tflite: bool = False) -> keras.Model:
    length, batch = (cfg.tflite_samples, 1) if tflite else (None, None)
    waveform = keras.Input(shape=(length,), batch_size=batch, name="waveform")
    pad, stft, magnitude = L.spectral_front_end(cfg, tflite)
    spectrum = stft(pad(waveform))
    noisy_magnitude = magnitude(spectrum)  # [B, T, F, 1]
    history = cfg.history_frames
    padded = L.PrependSilence(history, dtype="float32", name="prepend_silence")(noisy_magnitude)
    if cfg.lookahead_frames:  # the gain of frame t is computed at frame t + lookahead
        padded = L.AppendSilence(cfg.lookahead_frames, dtype="float32", name="append_silence")(padded)
    gain = _GAIN_NETWORKS[cfg.architecture](padded, cfg, tflite)  # [B, T + lookahead, F, 1], float32
    if cfg.lookahead_frames:
        gain = L.DropFrames(cfg.lookahead_frames, dtype="float32", name="drop_lookahead")(gain)
    estimate = keras.layers.Multiply(dtype="float32", name="estimated_magnitude")([gain, noisy_magnitude])
    resynthesised = L.inverse_stft(cfg, tflite)(L.ApplyMask(dtype="float32", name="apply_gain")([spectrum, gain]))
    denoised = L.TrimToInput(cfg.frame_length, cfg.hop_length, dtype="float32", name="denoised")(
        [resynthesised, waveform])
    magnitude_out = keras.layers.Reshape((-1, cfg.n_bins), dtype="float32", name="magnitude")(estimate)
    return keras.Model(waveform, {"denoised": denoised, "magnitude": magnitude_out},
                       name=f"denoiser_{cfg.architecture}")


def build_streaming_denoiser(cfg: DenoiserConfig, weights_from: keras.Model | None = None) -> keras.Model:
    """One hop of the denoiser with explicit state, builtin TFLite ops only, with the weights of
    `weights_from` (a model of build_denoiser(cfg)) when given.

    Inputs: samples [1, hop] and state tensors that all start at zero (= silence before the
    recording): input_state [1, frame - hop] (the last input samples), output_state
    [1, frame - hop] (overlap-add tail) and the model's memory of past frames:
      mask:  log_magnitude_state [1, A - 1, F] (log magnitudes relative to silence, A =
             noise_context_frames), level_state [1, C - 1] (frame levels), feature_state
             [1, C - 1, E] (frame embeddings minus the embedding of silence, C = context_frames,
             E = bottleneck_units), with temporal_blocks n, temporal_state [1, 2(2^n - 1), H]
             (the last 2^i inputs of dilated block i, minus those of silence, block after block)
             and, with recurrent_units R,
             recurrent_state [1, R] (the GRU's): each hop computes one new frame and reuses the
             cached ones; what its layers give for silence is stored in the model (SilenceOffset);
      fcn16: magnitude_state [1, C - 1, F, 1] (the last magnitude frames).
    With lookahead_frames K, the gain computed for the newest frame applies to the frame K hops
    earlier, kept in spectrum_state [1, K, F, 1, 2] (real and imaginary parts).
    Outputs: denoised [1, hop] and next_<state> for every state input. The output is the offline
    model's output delayed by cfg.latency_samples = frame - hop + K * hop samples (192 at the
    defaults: 24 ms at 8 kHz).
    """
    hop, tail = cfg.hop_length, cfg.frame_length - cfg.hop_length
    samples = keras.Input((hop,), batch_size=1, name="samples")
    input_state = keras.Input((tail,), batch_size=1, name="input_state")
    output_state = keras.Input((tail,), batch_size=1, name="output_state")
    frame = keras.ops.concatenate([input_state, samples], axis=1)  # [1, frame_length]
    _, stft, magnitude = L.spectral_front_end(cfg, tflite=True)
    spectrum = stft(keras.ops.expand_dims(frame, -1))  # one frame: [1, 1, F, 1, 2]
    memory_inputs, gain, next_memory = _STREAMING_GAINS[cfg.architecture](magnitude(spectrum), cfg)
    if cfg.lookahead_frames:
        spectrum_state = keras.Input((cfg.lookahead_frames, cfg.n_bins, 1, 2), batch_size=1, name="spectrum_state")
        spectra = keras.ops.concatenate([spectrum_state, spectrum], axis=1)  # [1, K + 1, F, 1, 2]
        spectrum, next_memory["next_spectrum_state"] = spectra[:, :1], spectra[:, 1:]
        memory_inputs.append(spectrum_state)
    resynthesised = L.inverse_stft(cfg, tflite=True)(L.ApplyMask(name="apply_gain")([spectrum, gain]))
    buffer = keras.ops.pad(output_state, [[0, 0], [0, hop]]) + resynthesised[:, :, 0]  # [1, frame_length]
    outputs = {"denoised": buffer[:, :hop], "next_input_state": frame[:, hop:], **next_memory,
               "next_output_state": buffer[:, hop:]}
    model = keras.Model([samples, input_state, *memory_inputs, output_state], outputs,
                        name=f"streaming_denoiser_{cfg.architecture}")
    if weights_from is not None:
        copy_weights(weights_from, model)
        if cfg.architecture == "mask":
            _store_silence(model, cfg)
    return model


def _store_silence(model: keras.Model, cfg: DenoiserConfig) -> None:
    """Fill a streaming mask model's SilenceOffset layers with what its own layers output for
    silence: the frame embedding of all-zero (level-normalised) features, then the context layer
    and each dilated block over that steady input; fold each block's silence input into its
    depthwise bias (the step feeds it taps minus silence)."""
    x = _FrameEmbedding(cfg, model)(keras.ops.zeros((1, 1, cfg.n_bins, _feature_count(cfg))))  # [1, 1, E]
    model.get_layer("embedding_silence").set_weights([keras.ops.convert_to_numpy(x)[0, 0]])
    x = model.get_layer("context")(keras.ops.repeat(x, cfg.context_frames, axis=1))  # [1, 1, H]
    blocks, block_inputs = _TemporalBlocks(cfg, model, step=True), []
    for i in range(cfg.temporal_blocks):
        block_inputs.append(keras.ops.convert_to_numpy(x)[0, 0])
        x = blocks.block(i, keras.ops.repeat(x, 3, axis=1))  # the step's three taps, all silence
    for i, (silence, depthwise) in enumerate(zip(block_inputs, blocks.depthwise), start=1):
        model.get_layer(f"temporal_{i}_silence").set_weights([silence])
        kernel, bias = depthwise.get_weights()  # [3, H, 1], [H]
        depthwise.set_weights([kernel, bias + kernel.sum(axis=0)[:, 0] * silence])


def _streaming_mask_gain(magnitude, cfg: DenoiserConfig):
    """One frame of the mask model from cached state: O(1) frames of work per hop.

    Log magnitudes are kept relative to silence (minus log(floor)) and frame embeddings relative to
    the embedding of silence, so zero states are exactly the silence the offline model prepends
    (the level normalisation cancels the log shift).
    """
    frames, bins = cfg.context_frames, cfg.n_bins
    log_state = keras.Input((cfg.noise_context_frames - 1, bins), batch_size=1, name="log_magnitude_state")
    level_state = keras.Input((frames - 1,), batch_size=1, name="level_state")
    feature_state = keras.Input((frames - 1, _embedding_size(cfg)), batch_size=1, name="feature_state")
    log_layer = L.LogCompress(dtype="float32", name="log_magnitude")
    relative = keras.ops.reshape(log_layer(magnitude), (1, 1, bins)) - math.log(log_layer.floor)
    history = keras.ops.concatenate([log_state, relative], axis=1)  # [1, A, F]
    features = [relative, keras.ops.mean(history, axis=1, keepdims=True)]  # [1, 1, F] each
    if cfg.noise_minimum:
        features.append(keras.ops.min(history, axis=1, keepdims=True))
    features = keras.ops.stack(features, axis=-1)  # [1, 1, F, N]
    levels = keras.ops.concatenate([level_state, keras.ops.mean(features, axis=(2, 3))], axis=1)  # [1, C]
    normalised = features - keras.ops.mean(levels, axis=1)[:, None, None, None]
    embedded = _FrameEmbedding(cfg)(normalised)  # [1, 1, E]
    silence = L.SilenceOffset(_embedding_size(cfg), name="embedding_silence")
    context = keras.ops.concatenate([silence(feature_state), embedded], axis=1)  # [1, C, E]
    states = [log_state, level_state, feature_state]
    temporal_state = None
    if cfg.temporal_blocks:
        temporal_state = keras.Input((cfg.temporal_state_frames, cfg.hidden_units), batch_size=1,
                                     name="temporal_state")
    recurrent_state = None
    if cfg.recurrent_units:
        recurrent_state = keras.Input((cfg.recurrent_units,), batch_size=1, name="recurrent_state")
    gain, next_head = _context_head(context, cfg, padding="valid", recurrent_state=recurrent_state, unroll=True,
                                    temporal_state=temporal_state)  # [1, 1, F, 1]
    next_memory = {"next_log_magnitude_state": history[:, 1:], "next_level_state": levels[:, 1:],
                   "next_feature_state": silence(context[:, 1:], subtract=True), **next_head}
    states += [s for s in (temporal_state, recurrent_state) if s is not None]
    return states, gain, next_memory


def _streaming_history_gain(magnitude, cfg: DenoiserConfig):
    """fcn16: keep the last history_frames magnitude frames and run the context on them."""
    history = cfg.history_frames
    magnitude_state = keras.Input((history, cfg.n_bins, 1), batch_size=1, name="magnitude_state")
    frames = keras.ops.concatenate([magnitude_state, magnitude], axis=1)  # [1, H + 1, F, 1]
    gain = _fcn16_gain(frames, cfg, last_frames=cfg.context_frames)  # [1, 1, F, 1]
    return [magnitude_state], gain, {"next_magnitude_state": frames[:, 1:]}


def _mask_gain(noisy_magnitude, cfg: DenoiserConfig, tflite: bool = False):
    """Bounded mask in [mask_floor, 1] from level-normalised log magnitudes.

    Features per frame: the log magnitude and its average over the last `noise_context_frames`
    frames (a noise-floor cue; with cfg.noise_minimum also its minimum over them), all minus the
    mean level of the last `context_frames` frames, so a gain on the recording changes nothing once
    the silent history before the recording has scrolled out. Then `_context_head`.
    """
    log_magnitude = L.LogCompress(dtype="float32", name="log_magnitude")(noisy_magnitude)
    long_term = L.CausalMovingAverage(cfg.noise_context_frames, dtype="float32", name="long_term")(log_magnitude)
    features = [log_magnitude, long_term]
    if cfg.noise_minimum:
        features.append(L.CausalMovingMinimum(cfg.noise_context_frames, dtype="float32",
                                              name="noise_minimum")(log_magnitude))
    features = keras.layers.Concatenate(axis=-1, dtype="float32", name="features")(features)
    features = L.CausalLevelNorm(cfg.context_frames, dtype="float32", name="level_norm")(features)
    gain, _ = _context_head(_FrameEmbedding(cfg)(features), cfg, padding="causal",
                            drop_frames=cfg.history_frames, unroll=tflite)
    return gain


def _layer(model: keras.Model | None, name: str, make):
    """`model`'s layer `name` (the trained one), or a new one from make(name=name)."""
    return model.get_layer(name) if model is not None else make(name=name)


class _FrameEmbedding:
    """Per frame: in-model normalisation of the [F, N] features (N = _feature_count), flattened to
    NF, then (when cfg.bottleneck_units) a dense projection: [B, T, F, N] -> [B, T, E]. With
    `model`, the embedding made of that model's layers."""

    def __init__(self, cfg: DenoiserConfig, model: keras.Model | None = None):
        self.normalization = _layer(model, "input_normalization", functools.partial(
            keras.layers.Normalization, axis=(-2, -1), dtype="float32"))
        self.flatten = _layer(model, "frames", functools.partial(
            keras.layers.Reshape, (-1, _feature_count(cfg) * cfg.n_bins)))
        self.bottleneck = (_layer(model, "bottleneck", functools.partial(
            keras.layers.Dense, cfg.bottleneck_units, activation="relu")) if cfg.bottleneck_units else None)

    def __call__(self, features):
        x = self.flatten(self.normalization(features))
        return self.bottleneck(x) if self.bottleneck is not None else x


def _feature_count(cfg: DenoiserConfig) -> int:
    """Mask model features per bin: log magnitude, long-term average (and minimum)."""
    return 3 if cfg.noise_minimum else 2


def _embedding_size(cfg: DenoiserConfig) -> int:
    return cfg.bottleneck_units or _feature_count(cfg) * cfg.n_bins


def _context_head(frames, cfg: DenoiserConfig, padding: str, drop_frames: int = 0, recurrent_state=None,
                  unroll: bool = False, temporal_state=None):
    """Frame embeddings [B, T, E] -> (gain [B, T', F, 1], {next_<state>: tensor} of a streaming step).

    One context layer (a convolution over context_frames frames -> hidden; 'causal' keeps T,
    'valid' over exactly context_frames frames gives the one frame a streaming step needs), then
    cfg.temporal_blocks dilated blocks (causal; or, for a streaming step, over the cached
    `temporal_state`, stored relative to silence), then
    `drop_frames` leading frames dropped (the silence the offline model prepends), then, when
    cfg.recurrent_units, a GRU that starts from `recurrent_state` (None: zeros) at the first kept
    frame, `hidden_layers` dense layers, a sigmoid over F bins rescaled to [mask_floor, 1].
    unroll: the GRU as plain per-frame ops (TFLite builtins; needs a fixed number of frames).
    """
    context = keras.layers.Conv1D(cfg.hidden_units, cfg.context_frames, padding=padding, activation="relu",
                                  name="context")
    x = context(frames)  # [B, T, H]
    next_states = {}
    if cfg.temporal_blocks:
        if temporal_state is None:
            x = _TemporalBlocks(cfg).causal(x)
        else:
            x, next_states["next_temporal_state"] = _TemporalBlocks(cfg, step=True).step(x, temporal_state)
    if drop_frames:
        x = L.DropFrames(drop_frames, name="drop_history")(x)
    if cfg.recurrent_units:
        gru = keras.layers.GRU(cfg.recurrent_units, return_sequences=True, return_state=True, unroll=unroll,
                               name="recurrent")
        x, next_states["next_recurrent_state"] = gru(x, initial_state=recurrent_state)  # [B, T', R], [B, R]
    for i in range(cfg.hidden_layers):
        x = keras.layers.Dense(cfg.hidden_units, activation="relu", name=f"hidden_{i + 1}")(x)
    mask = keras.layers.Dense(cfg.n_bins, activation="sigmoid", dtype="float32", name="mask_logits")(x)
    mask = keras.layers.Rescaling(1.0 - cfg.mask_floor, offset=cfg.mask_floor, dtype="float32",
                                  name="mask")(mask)
    return keras.layers.Reshape((-1, cfg.n_bins, 1), dtype="float32", name="gain")(mask), next_states


class _TemporalBlocks:
    """cfg.temporal_blocks residual blocks over frames [B, T, H], block i (from 1) with dilation
    d = 2^(i-1): x + pointwise(relu(depthwise_conv(x, kernel 3, dilation d))), ReLU after the
    pointwise layer. Reaches 2 * (2^n - 1) frames back; costs 3H + H^2 per block and frame.

    step=True builds the streaming form: the same weights with dilation 1, applied to the three
    taps (frames t - 2d, t - d, t) gathered from the cached block inputs. With `model`, the blocks
    made of that model's layers.
    """

    def __init__(self, cfg: DenoiserConfig, model: keras.Model | None = None, step: bool = False):
        self.units = cfg.hidden_units
        self.spans = [2 * d for d in self.dilations(cfg)]
        self.depthwise = [_layer(model, f"temporal_{i}_depthwise", functools.partial(
            keras.layers.DepthwiseConv1D, 3, dilation_rate=1 if step else d, activation="relu"))
            for i, d in enumerate(self.dilations(cfg), start=1)]
        self.pointwise = [_layer(model, f"temporal_{i}_pointwise", functools.partial(
            keras.layers.Dense, cfg.hidden_units, activation="relu")) for i in range(1, cfg.temporal_blocks + 1)]

    @staticmethod
    def dilations(cfg: DenoiserConfig) -> list[int]:
        return [2**i for i in range(cfg.temporal_blocks)]

    def block(self, i: int, window):
        """[B, 2 dilation + T, H] -> [B, T, H]: block i over a window with its history."""
        history = 2 * self.depthwise[i].dilation_rate[0]
        return self._residual(window[:, history:], self.pointwise[i](self.depthwise[i](window)))

    @staticmethod
    def _residual(x, update):
        """x + update, both ReLU outputs (or sums of them): the ReLU changes no value, and stops the
        TFLite converter from distributing the next dense layer over the chain of residual sums
        (a 256x256 product per block more in the streaming step)."""
        return keras.ops.relu(x + update)

    def causal(self, x):
        for i, span in enumerate(self.spans):  # zeros before the start: inside the prepended silence
            x = self.block(i, keras.layers.ZeroPadding1D((span, 0), name=f"temporal_{i + 1}_pad")(x))
        return x

    def step(self, x, state):
        """One new frame x [1, 1, H] and state [1, cfg.temporal_state_frames, H] (block i's last 2d inputs,
        block after block, minus those of silence, which live in SilenceOffset layers: zero state
        is silence) -> (output [1, 1, H], next state).

        The depthwise layers take the taps minus silence: their bias holds what silence adds
        (set by _store_silence), which saves an op per block on every hop.
        """
        next_parts, offset = [], 0
        for i, span in enumerate(self.spans):
            relative = L.SilenceOffset(self.units, name=f"temporal_{i + 1}_silence")(x, subtract=True)
            taps = keras.ops.concatenate([state[:, offset:offset + span:span // 2], relative], axis=1)  # t-2d, t-d, t
            next_parts += [state[:, offset + 1:offset + span], relative]
            x, offset = self._residual(x, self.pointwise[i](self.depthwise[i](taps))), offset + span
        return x, keras.ops.concatenate(next_parts, axis=1)


# The MATLAB demo's network: (filters, frequency kernel) of the convs after the first one.
_FCN16_BODY = 4 * [(30, 5), (8, 9), (18, 9)] + [(30, 5), (8, 9)]


def _fcn16_gain(noisy_magnitude, cfg: DenoiserConfig, tflite: bool = False, last_frames: int | None = None):
    """The demo's 16-conv network on globally normalised magnitudes; gain = prediction / noisy.

    conv[9x8]x18 (the 8-frame context) -> 4 x {conv[5x1]x30, conv[9x1]x8, conv[9x1]x18} ->
    conv[5x1]x30 -> conv[9x1]x8 -> conv[129x1]x1, batch norm + ReLU after all but the last.
    """
    x = keras.layers.Normalization(axis=None, dtype="float32", name="input_normalization")(noisy_magnitude)
    if last_frames is not None:  # the streaming step: only the frames the context conv reads
        x, noisy_magnitude = x[:, -last_frames:], noisy_magnitude[:, -1:]
    x = L.CausalContextConv(18, cfg.context_frames, 9, name="context")(x)
    x = _bn_relu(x, "context")
    if last_frames is not None:  # ...and the rest works on the current column only
        x = x[:, -1:]
    for i, (filters, width) in enumerate(_FCN16_BODY, start=2):
        x = keras.layers.Conv2D(filters, (1, width), padding="same", name=f"conv_{i}")(x)
        x = _bn_relu(x, f"conv_{i}")
    x = keras.layers.Conv2D(1, (1, cfg.n_bins), padding="same", dtype="float32", name="conv_16")(x)
    predicted = keras.layers.Normalization(axis=None, invert=True, dtype="float32",
                                           name="target_denormalization")(x)
    gain = L.GainFromMagnitude(dtype="float32", name="gain")([predicted, noisy_magnitude])
    if last_frames is not None:
        return gain
    return L.DropFrames(cfg.history_frames, dtype="float32", name="drop_history")(gain)


_GAIN_NETWORKS = {"mask": _mask_gain, "fcn16": _fcn16_gain}
_STREAMING_GAINS = {"mask": _streaming_mask_gain, "fcn16": _streaming_history_gain}


def _bn_relu(x, name):
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def copy_weights(source: keras.Model, target: keras.Model) -> None:
    """Copy weights layer by layer (by name), e.g. from the training model into its TFLite twin
    (a streaming model's SilenceOffset layers are not in the source: _store_silence fills them)."""
    for layer in target.layers:
        if layer.weights and not isinstance(layer, L.SilenceOffset):
            layer.set_weights(source.get_layer(layer.name).get_weights())
            if isinstance(layer, keras.layers.Normalization):
                layer.finalize_state()  # set_weights alone leaves its mean/variance tensors stale


def count_macs_per_frame(model: keras.Model) -> int:
    """Multiply-accumulates per STFT frame of the trainable layers (convs, dense and GRU)."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.DepthwiseConv1D):
            total += math.prod(layer.kernel.shape)
        elif isinstance(layer, keras.layers.GRU):
            total += math.prod(layer.cell.kernel.shape) + math.prod(layer.cell.recurrent_kernel.shape)
        elif isinstance(layer, (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Dense)):
            positions = int(layer.output.shape[2]) if isinstance(layer, keras.layers.Conv2D) else 1
            total += math.prod(layer.kernel.shape) * positions  # positions: frequency bins per frame
    return total
