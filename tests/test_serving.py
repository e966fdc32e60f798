"""The TF Serving contract: REST (row and column formats, errors) and gRPC through the official
`tensorflow-serving-api` client, both equal to calling the SavedModel directly."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from audio_dl import serving
from audio_dl.config import MelodyConfig, make_config
from audio_dl.serving import ModelRegistry, create_rest_app, start_grpc_server
from conftest import SIGNALS, free_port, stop_server

MELODY_ARGS = {"primer": np.array([9, 4, 9, 4], np.int32), "temperature": np.float32(1.0), "top_k": np.int32(0),
               "seed": np.int32(7), "max_steps": np.int32(40)}


@pytest.fixture(scope="module")
def registry(tiny_export, tiny_melody_run):
    return ModelRegistry({"denoiser": tiny_export.parent, "melody": tiny_melody_run / "export"})


@pytest.fixture(scope="module")
def rest(registry):
    return create_rest_app(registry).test_client()


@pytest.fixture(scope="module")
def stub(registry):
    server, port = start_grpc_server(registry)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield prediction_service_pb2_grpc.PredictionServiceStub(channel)
    channel.close()
    server.stop(None)


def direct(registry, name, signature, **inputs):
    model, _ = registry.get(name, None)
    return {k: v.numpy() for k, v in model.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()}).items()}


def waveforms(count=2, length=4000):
    return (0.1 * np.random.default_rng(0).standard_normal((count, length))).astype(np.float32)


def test_rest_row_format_equals_the_savedmodel(rest, registry):
    x = waveforms()
    reply = rest.post("/v1/models/denoiser:predict", json={"instances": x.tolist()})
    assert reply.status_code == 200, reply.json
    expected = direct(registry, "denoiser", "serving_default", waveform=x)["denoised"]
    np.testing.assert_allclose(np.array(reply.json["predictions"]), expected, atol=1e-6)


def test_rest_column_format_with_version_and_signature(rest, registry):
    x = waveforms(1)
    reply = rest.post("/v1/models/denoiser/versions/1:predict",
                      json={"signature_name": "serving_default", "inputs": {"waveform": x.tolist()}})
    assert reply.status_code == 200, reply.json
    np.testing.assert_allclose(np.array(reply.json["outputs"]),
                               direct(registry, "denoiser", "serving_default", waveform=x)["denoised"], atol=1e-6)


def test_rest_melody_generate_and_one_step(rest, registry):
    body = {"signature_name": "generate", "inputs": {k: v.tolist() for k, v in MELODY_ARGS.items()}}
    reply = rest.post("/v1/models/melody:predict", json=body)
    assert reply.status_code == 200, reply.json
    assert reply.json["outputs"] == direct(registry, "melody", "generate", **MELODY_ARGS)["tokens"].tolist()
    units = make_config(MelodyConfig, "tiny").lstm_units
    instance = {"token": 1, **{f"state_{k}_{i}": [0.0] * units for i in (1, 2) for k in "hc"}}
    reply = rest.post("/v1/models/melody:predict", json={"signature_name": "one_step", "instances": [instance, instance]})
    assert reply.status_code == 200 and len(reply.json["predictions"]) == 2
    assert set(reply.json["predictions"][0]) >= {"logits", "next_state_h_1"}


def test_rest_status_and_metadata(rest):
    assert rest.get("/v1/models/melody").json["model_version_status"][0]["state"] == "AVAILABLE"
    signatures = rest.get("/v1/models/melody/metadata").json["metadata"]["signature_def"]["signature_def"]
    assert {"generate", "one_step", "score", "serving_default"} <= set(signatures)


def test_rest_metadata_is_tf_serving_get_model_metadata_response(rest):
    """The JSON of GetModelMetadataResponse as TF Serving writes it: proto field names, default
    values included, int64 sizes and versions as strings, the SignatureDefMap under signature_def."""
    reply = rest.get("/v1/models/denoiser/versions/1/metadata")
    assert reply.status_code == 200, reply.json
    assert set(reply.json) == {"model_spec", "metadata"}
    assert reply.json["model_spec"] == {"name": "denoiser", "signature_name": "", "version": "1"}
    signatures = reply.json["metadata"]["signature_def"]["signature_def"]
    assert set(signatures) == {"serving_default", "__saved_model_init_op"}
    unknown = {"size": "-1", "name": ""}
    tensor = {"dtype": "DT_FLOAT", "tensor_shape": {"dim": [unknown, unknown], "unknown_rank": False}}
    serving = signatures["serving_default"]
    assert serving["method_name"] == "tensorflow/serving/predict"
    assert serving["inputs"] == {"waveform": {**tensor, "name": "serving_default_waveform:0"}}
    assert serving["outputs"]["denoised"].pop("name").endswith(":0") and serving["outputs"] == {"denoised": tensor}


def _generate(**changes):
    """A :predict body for the melody model's `generate` signature, with some inputs changed."""
    inputs = {k: v.tolist() for k, v in MELODY_ARGS.items()} | changes
    return {"signature_name": "generate", "inputs": inputs}


@pytest.mark.parametrize("path, body, status, message", [
    ("/v1/models/nope:predict", {"instances": [[0.0]]}, 404, "Servable not found"),
    ("/v1/models/denoiser/versions/9:predict", {"instances": [[0.0]]}, 404, "Specific(denoiser, 9)"),
    ("/v1/models/denoiser:predict", {"instances": [[0.0]], "inputs": [[0.0]]}, 400, "exactly one of"),
    ("/v1/models/denoiser:predict", {"signature_name": "nope", "instances": [[0.0]]}, 400, "not found in signature"),
    ("/v1/models/denoiser:predict", {"inputs": {"audio": [[0.0]]}}, 400, "input keys must be"),
    ("/v1/models/denoiser:predict", {"instances": [[0.0, 1.0], [0.0]]}, 400, "equal shapes"),
    ("/v1/models/denoiser:predict", {"inputs": [0.0, 1.0]}, 400, "has shape [2]"),
    ("/v1/models/denoiser:predict", {"inputs": [["a", "b"]]}, 400, "input 'waveform'"),
    ("/v1/models/denoiser:predict", {"inputs": {"waveform": [[0.0, 1.0], [0.0]]}}, 400, "rectangular"),
    ("/v1/models/denoiser:predict", {"instances": [[None, 0.1]]}, 400, "takes float32 values; got nulls"),
    ("/v1/models/denoiser:predict", {"instances": [[True, False]]}, 400, "takes float32 values; got booleans"),
    ("/v1/models/denoiser:predict", {"instances": [[0.5, True]]}, 400, "takes float32 values; got booleans among"),
    ("/v1/models/melody:predict", _generate(primer=[5, True]), 400, "'primer' takes int32 values; got booleans among"),
    ("/v1/models/denoiser:predict", {"instances": [[16777216, 0]]}, 400, "takes float32 values; got integers in"),
    ("/v1/models/denoiser:predict", {"instances": [[0.5, 16777217]]}, 400,
     "takes float32 values; got integers in [16777217, 16777217] among floats"),
    ("/v1/models/denoiser:predict", {"instances": [[-1, 9223372036854775809]]}, 400,  # numpy: float64
     "takes float32 values; got integers in [-1, 9223372036854775809]"),
    ("/v1/models/denoiser:predict", {"instances": [[1e39, 0]]}, 400, "takes float32 values; got floats"),
    ("/v1/models/melody:predict", _generate(primer=[5, 0.5]), 400, "input 'primer' takes int32 values; got floats"),
    ("/v1/models/denoiser:predict", {"instances": [[1e39, 0.0]]}, 400, "takes float32 values; got floats"),
    ("/v1/models/denoiser:predict", {"signature_name": ["a"], "instances": [[0.0]]}, 400,
     "'signature_name' must be a string"),
    ("/v1/models/melody:predict", _generate(seed=2 ** 40), 400,
     "input 'seed' takes int32 values; got integers in [1099511627776, 1099511627776]"),
    ("/v1/models/melody:predict", _generate(primer=[17.7]), 400, "input 'primer' takes int32 values; got floats"),
    ("/v1/models/melody:predict", _generate(primer=[999]), 400, "primer tokens must be in [3, "),
    ("/v1/models/melody:predict", _generate(temperature=-1.0), 400, "temperature must be a finite number > 0; got] [-1]"),
])
def test_rest_malformed_requests_get_tf_serving_errors(rest, path, body, status, message):
    reply = rest.post(path, json=body)
    assert reply.status_code == status and set(reply.json) == {"error"} and message in reply.json["error"]


def test_rest_reads_integers_among_floats_as_the_numbers_they_are(rest, registry):
    """[0, 0.5, 16777215]: JSON writers spell whole numbers as integers; each kind is checked, none rounded."""
    x = waveforms(1)
    x[0, ::7], x[0, 3] = 0.0, 16777215.0  # below 2**24: float32 holds it exactly
    body = [[int(v) if v in (0.0, 16777215.0) else v for v in row] for row in x.tolist()]
    assert {type(v) for v in body[0]} == {int, float}
    reply = rest.post("/v1/models/denoiser:predict", json={"instances": body})
    assert reply.status_code == 200, reply.json
    np.testing.assert_allclose(np.array(reply.json["predictions"]),
                               direct(registry, "denoiser", "serving_default", waveform=x)["denoised"], atol=1e-6,
                               rtol=1e-6)


def test_integers_numpy_cannot_hold_are_checked_as_integers():
    """A caller's own list may hold what JSON would not give: 2**70 is refused, not recursed on."""
    value = serving._json_array([0.0, 2 ** 70])
    assert not serving._fits(value, tf.float32)
    assert serving._describe(value, tf.float32) == f"integers in [{2 ** 70}, {2 ** 70}] among floats"


def test_rest_accepts_a_json_body_sent_as_a_form_like_curl_d(rest, registry):
    x = waveforms(1)
    reply = rest.post("/v1/models/denoiser:predict", data=json.dumps({"instances": x.tolist()}),
                      content_type="application/x-www-form-urlencoded")
    assert reply.status_code == 200, reply.json
    np.testing.assert_allclose(np.array(reply.json["predictions"]),
                               direct(registry, "denoiser", "serving_default", waveform=x)["denoised"], atol=1e-6)


@pytest.mark.parametrize("number", ["1e400", "-1.5e309", "9" * 400, "9" * 5000])
def test_rest_refuses_a_number_too_big_for_a_double_as_tf_serving_does(rest, number):
    reply = rest.post("/v1/models/denoiser:predict", data=f'{{"instances": [[{number}, 0.0]]}}',
                      content_type="application/json")
    assert reply.status_code == 400 and set(reply.json) == {"error"}, reply.json
    assert "Number too big to be stored in double" in reply.json["error"]


def test_rest_reads_an_integer_beyond_64_bits_as_a_double_as_tf_serving_does(rest):
    for instances in ("[[2e21, 0.5]]", f"[[{2**71}, 0.5]]", f"[[{2**71}, 1]]"):  # the same float32 input
        reply = rest.post("/v1/models/denoiser:predict", data=f'{{"instances": {instances}}}',
                          content_type="application/json")
        assert reply.status_code == 200, (instances, reply.json)


def test_rest_reads_nan_and_infinity_as_tf_serving_does(rest):
    reply = rest.post("/v1/models/denoiser:predict", data='{"instances": [[NaN, Infinity, -Infinity, 0.0]]}',
                      content_type="application/json")
    assert reply.status_code == 200, reply.json


def test_rest_body_that_is_not_json(rest):
    reply = rest.post("/v1/models/denoiser:predict", data="{not json", content_type="application/json")
    assert reply.status_code == 400 and "JSON" in reply.json["error"]
    deep = '{"instances": ' + "[" * 5000 + "]" * 5000 + "}"
    reply = rest.post("/v1/models/denoiser:predict", data=deep, content_type="application/json")
    assert reply.status_code == 400 and "nested too deeply" in reply.json["error"]


def test_grpc_predict_equals_the_savedmodel(stub, registry):
    x = waveforms()
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "denoiser"
    request.model_spec.signature_name = "serving_default"
    request.inputs["waveform"].CopyFrom(tf.make_tensor_proto(x))
    response = stub.Predict(request, timeout=60)
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["denoised"]),
                               direct(registry, "denoiser", "serving_default", waveform=x)["denoised"], atol=1e-6)
    assert response.model_spec.version.value == 1

    melody = predict_pb2.PredictRequest()
    melody.model_spec.name = "melody"
    melody.model_spec.signature_name = "generate"
    for key, value in MELODY_ARGS.items():
        melody.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    tokens = tf.make_ndarray(stub.Predict(melody, timeout=60).outputs["tokens"])
    np.testing.assert_array_equal(tokens, direct(registry, "melody", "generate", **MELODY_ARGS)["tokens"])


@pytest.mark.parametrize("name, signature, key, code", [
    ("nope", "serving_default", "waveform", grpc.StatusCode.NOT_FOUND),
    ("denoiser", "nope", "waveform", grpc.StatusCode.INVALID_ARGUMENT),
    ("denoiser", "serving_default", "audio", grpc.StatusCode.INVALID_ARGUMENT),
])
def test_grpc_errors_are_status_codes_not_crashes(stub, name, signature, key, code):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = signature
    request.inputs[key].CopyFrom(tf.make_tensor_proto(waveforms(1)))
    with pytest.raises(grpc.RpcError) as caught:
        stub.Predict(request, timeout=60)
    assert caught.value.code() == code


def test_grpc_refuses_a_tensor_of_another_dtype_as_tf_serving_does(stub):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "denoiser"
    request.inputs["waveform"].CopyFrom(tf.make_tensor_proto(waveforms(1).astype(np.float64)))
    with pytest.raises(grpc.RpcError) as caught:
        stub.Predict(request, timeout=60)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "'waveform' has dtype float64; the signature takes float32" in caught.value.details()


def _serve(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "audio_dl.serving", *args], capture_output=True, text=True,
                          timeout=300)


@SIGNALS
def test_sigterm_and_ctrl_c_stop_the_server_with_one_line_as_the_clis_do(tiny_export, signum, code, line):
    rest_port = free_port()
    result = stop_server([sys.executable, "-m", "audio_dl.serving", "--model", f"d={tiny_export.parent}",
                          "--rest-port", rest_port, "--grpc-port", free_port()],
                         f"http://127.0.0.1:{rest_port}/v1/models/d", signum)
    assert result.returncode == code, result.stderr[-2000:]
    assert result.stderr.rstrip().endswith(f"python -m audio_dl.serving: {line}") and "Traceback" not in result.stderr


def test_a_port_in_use_a_bad_port_a_repeated_name_or_a_corrupt_version_is_one_line_exit_2(tiny_export, tmp_path):
    shutil.copytree(tiny_export, tmp_path / "base" / "1")
    (tmp_path / "base" / "1" / "saved_model.pb").write_bytes(b"not a protocol buffer")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        for args, message in (
                (["--model", f"d={tiny_export.parent}", "--rest-port", port, "--grpc-port", free_port()],
                 f"cannot serve REST on 127.0.0.1:{port}"),
                (["--model", f"d={tiny_export.parent}", "--grpc-port", port, "--rest-port", free_port()],
                 f"cannot serve gRPC on 127.0.0.1:{port}"),
                (["--model", f"d={tiny_export.parent}", "--rest-port", "99999"], "'99999' is not a port number"),
                (["--model", f"d={tmp_path / 'missing'}", "--grpc-port", port], "path does not exist"),
                (["--model", f"d={tiny_export.parent}", "--model", f"d={tmp_path}", "--rest-port", free_port(),
                  "--grpc-port", free_port()], "--model names 'd' twice"),
                (["--model", f"d={tmp_path / 'base'}", "--rest-port", free_port(), "--grpc-port", free_port()],
                 "1 does not load as a SavedModel")):
            result = _serve(*args)
            assert result.returncode == 2 and message in result.stderr, result.stderr[-500:]
            assert "Traceback" not in result.stderr
