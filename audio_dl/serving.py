"""The TF Serving contract, served in-process: the REST API and the gRPC PredictionService.

`tensorflow_model_server` cannot be installed from PyPI, so this module serves the same SavedModel
folders (TF Serving base paths: BASE/<version>/saved_model.pb) through the same interfaces, to
test clients and exports against, and to develop without docker:

    python -m audio_dl.serving --model denoiser=saved_models/denoiser --model melody=saved_models/melody

REST (TF Serving's API):
    GET  /v1/models/NAME[/versions/V]            version status
    GET  /v1/models/NAME[/versions/V]/metadata   the SavedModel's SignatureDefs, as GetModelMetadataResponse JSON
    POST /v1/models/NAME[/versions/V]:predict    {"signature_name": S, "instances": [...]} (row format)
                                                 or {"signature_name": S, "inputs": ...}   (column format)
    answers {"predictions": ...} / {"outputs": ...}; errors {"error": "message"} with a 4xx status.
gRPC: tensorflow.serving.PredictionService/Predict with a PredictRequest (model_spec.name,
signature_name, version; inputs as TensorProtos), as the official `tensorflow-serving-api` client sends.

The real server: `docker run -p 8501:8501 -p 8500:8500 -v $PWD/saved_models/denoiser:/models/denoiser
-e MODEL_NAME=denoiser tensorflow/serving` (see README).
"""

from __future__ import annotations

import argparse
import json
import math
from concurrent import futures
from pathlib import Path
from typing import Sequence

import grpc
import numpy as np
import tensorflow as tf
from flask import Flask, jsonify, request
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2, model_pb2, predict_pb2, prediction_service_pb2_grpc

from audio_dl import cli
from audio_dl.errors import UsageError
from audio_dl.export import require_utf8_saved_model_path, saved_model_signatures, versions

DEFAULT_SIGNATURE = "serving_default"


class ServingError(Exception):
    """A request TF Serving would refuse: message + HTTP status + gRPC code."""

    def __init__(self, message: str, http_status: int = 400, code: grpc.StatusCode = grpc.StatusCode.INVALID_ARGUMENT):
        super().__init__(message)
        self.http_status, self.code = http_status, code


def base_versions(base: Path) -> list[int]:
    """The version numbers under a TF Serving base path; UsageError if there is none."""
    found = sorted(versions(cli.existing_folder(base, "a TF Serving base path")))
    if not found:
        raise UsageError(f"{base} holds no SavedModel versions (BASE/<number>/saved_model.pb)")
    return found


class ModelRegistry:
    """name -> {version: loaded SavedModel} and name -> {version: its SignatureDefs}, loaded once from
    TF Serving base paths."""

    def __init__(self, base_paths: dict[str, Path]):
        found = {name: {v: Path(base) / str(v) for v in base_versions(Path(base))} for name, base in base_paths.items()}
        self.models: dict[str, dict[int, object]] = {
            name: {v: _load(folder) for v, folder in folders.items()} for name, folders in found.items()}
        self.signature_defs: dict[str, dict[int, get_model_metadata_pb2.SignatureDefMap]] = {
            name: {v: _signature_defs(folder) for v, folder in folders.items()} for name, folders in found.items()}

    def get(self, name: str, version: int | None):
        if name not in self.models:
            raise ServingError(f"Servable not found for request: Latest({name})", 404, grpc.StatusCode.NOT_FOUND)
        versions = self.models[name]
        if version is None:
            version = max(versions)
        if version not in versions:
            raise ServingError(f"Servable not found for request: Specific({name}, {version})", 404,
                               grpc.StatusCode.NOT_FOUND)
        return versions[version], version

    def signature(self, name: str, version: int | None, signature_name: str):
        model, version = self.get(name, version)
        signature_name = signature_name or DEFAULT_SIGNATURE
        if signature_name not in model.signatures:
            raise ServingError(f"Serving signature name: \"{signature_name}\" not found in signature def")
        return model.signatures[signature_name], version


def run_signature(signature, inputs: dict[str, np.ndarray], exact_dtypes: bool = False) -> dict[str, np.ndarray]:
    """Call a signature with named numpy inputs, converted to its dtypes where no value changes
    (JSON numbers) or, with exact_dtypes (gRPC TensorProtos), only of its dtypes; ServingError on
    a mismatch, as TF Serving answers."""
    specs = signature.structured_input_signature[1]
    missing, unknown = sorted(set(specs) - set(inputs)), sorted(set(inputs) - set(specs))
    if missing or unknown:
        raise ServingError(f"input keys must be {sorted(specs)}; missing {missing}, unexpected {unknown}")
    tensors = {}
    for key, spec in specs.items():
        value = np.asarray(inputs[key])
        if exact_dtypes and value.dtype != spec.dtype.as_numpy_dtype:
            raise ServingError(f"input {key!r} has dtype {tf.as_dtype(value.dtype).name}; "
                               f"the signature takes {spec.dtype.name}")
        if not _fits(value, spec.dtype):
            raise ServingError(f"input {key!r} takes {spec.dtype.name} values; got {_describe(value, spec.dtype)}")
        if not spec.shape.is_compatible_with(value.shape):
            raise ServingError(f"input {key!r} has shape {list(value.shape)}, the signature takes {spec.shape}")
        tensors[key] = tf.constant(value.astype(spec.dtype.as_numpy_dtype) if value.dtype.kind == "O" else value,
                                   dtype=spec.dtype)
    try:
        outputs = signature(**tensors)
    except (tf.errors.OpError, ValueError, TypeError) as error:
        raise ServingError(_op_error_message(error)) from None
    return {key: value.numpy() for key, value in outputs.items()}


def _fits(value: np.ndarray, dtype: tf.DType) -> bool:
    """Whether `value` converts to `dtype` without loss, as TF Serving's JSON reader requires:
    integers within the dtype's range for integer inputs; for float inputs, numbers within its
    range and integers it holds exactly (float32: |n| < 2**24); never booleans, strings or nulls
    for numeric inputs. An empty array fits any dtype."""
    if value.size == 0:
        return True
    if value.dtype.kind == "O":  # JSON numbers of two kinds (_json_array): each kind must fit
        numbers = _split_numbers(value)
        return numbers is not None and _integers_fit(numbers[0], dtype) and _fits(numbers[1], dtype)
    if value.dtype.kind in "iu":
        return _integers_fit([int(value.min()), int(value.max())], dtype)
    if dtype.is_floating:
        if value.dtype.kind != "f":
            return False
        finite = value[np.isfinite(value)]  # NaN and infinity are kept, as TF Serving keeps them
        return finite.size == 0 or np.abs(finite).max() <= np.finfo(dtype.as_numpy_dtype).max
    if dtype == tf.string:
        return value.dtype.kind in "US"
    return not dtype.is_integer and value.dtype == dtype.as_numpy_dtype


def _integers_fit(integers: list[int], dtype: tf.DType) -> bool:
    """Whether these integers are all values of a numeric `dtype` (float32: |n| < 2**24)."""
    if not integers:
        return True
    if dtype.is_integer:
        limits = np.iinfo(dtype.as_numpy_dtype)
        return limits.min <= min(integers) and max(integers) <= limits.max
    return dtype.is_floating and max(map(abs, integers)) < 2 ** (np.finfo(dtype.as_numpy_dtype).nmant + 1)


def _split_numbers(value: np.ndarray) -> tuple[list[int], np.ndarray] | None:
    """(its integers, its floats as float64) of an object array of JSON values; None where it
    holds anything else (booleans, nulls, strings)."""
    items = value.ravel().tolist()
    integers = [item for item in items if type(item) is int]
    floats = np.array([item for item in items if type(item) is float], np.float64)
    return (integers, floats) if len(integers) + floats.size == len(items) else None


def _describe(value: np.ndarray, dtype: tf.DType) -> str:
    """What `value` holds that does not fit `dtype` (_fits), in words."""
    if value.dtype.kind in "iu":
        return f"integers in [{value.min()}, {value.max()}]"
    if value.dtype.kind == "O":
        numbers = _split_numbers(value)
        if numbers is not None:
            integers, floats = numbers
            if not _fits(floats, dtype):
                return _describe(floats, dtype)
            return f"integers in [{min(integers)}, {max(integers)}]{' among floats' if floats.size else ''}"
        leaves = {type(item) for item in value.flat}
        return ("nulls" if type(None) in leaves else "booleans among numbers" if bool in leaves
                else "values of mixed types")
    kinds = {"b": "booleans", "f": "floats", "U": "strings", "S": "strings"}
    return kinds.get(value.dtype.kind, value.dtype.name)


def _json_array(value) -> np.ndarray:
    """A JSON value as an array; kept as objects where numpy would change a number's kind, so that
    _fits checks each as TF Serving does: booleans among numbers ([1, true] -> [1, 1]) and integers
    that became floats ([0.5, 16777217] or [-1, 2**63] -> float64, which float32 rounds). ValueError
    if it is ragged."""
    array = np.asarray(value)
    if array.dtype.kind not in "iuf":
        return array
    objects = np.asarray(value, dtype=object)
    kinds = set(map(type, objects.ravel().tolist()))
    return objects if bool in kinds or (array.dtype.kind == "f" and int in kinds) else array


def _op_error_message(error: Exception) -> str:
    """The line of a TensorFlow error that says what went wrong: graph errors start with
    "Graph execution error:" and a node trace, and end with the message and the node's name."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    meaningful = [line for line in lines if not line.startswith(("[[", "Graph execution error", "Detected at node",
                                                                 "<stack traces"))]
    return (meaningful or lines or [type(error).__name__])[-1]


# --- REST --------------------------------------------------------------------------------------

def _json_number(text: str, integer: bool = False) -> float | int:
    """A JSON number as TF Serving's RapidJSON reader reads it: an integer stays exact within the
    int64/uint64 range and is a double beyond it; a number beyond a double's range (1e400, an
    integer of 400 digits) is refused, not read as infinity. The literals NaN, Infinity and
    -Infinity, which it reads, are json's constants and do not come here."""
    if integer and len(text) <= 20 and -2**63 <= (value := int(text)) < 2**64:
        return value
    value = float(text)
    if math.isinf(value):
        raise ServingError(f"JSON Parse error: Number too big to be stored in double: {text[:40]}")
    return value


def _json_body(data: bytes) -> dict:
    """A :predict body parsed as TF Serving parses it, whatever its Content-Type (curl -d sends a form type)."""
    try:
        body = json.loads(data, parse_float=_json_number, parse_int=lambda text: _json_number(text, integer=True))
    except RecursionError:
        raise ServingError("JSON Parse error: nested too deeply") from None
    except ValueError as error:  # not JSON, or not UTF-8
        raise ServingError(f"JSON Parse error: {error}") from None
    if not isinstance(body, dict):
        raise ServingError("JSON Parse error: the body must be a JSON object")
    return body


def _proto_json(message) -> dict:
    """A proto as TF Serving's REST API writes it: proto field names, fields at their defaults
    included, int64 values as strings."""
    try:
        return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                         always_print_fields_with_no_presence=True)
    except TypeError:  # protobuf < 5.26 (under TF 2.16 and 2.17) names that option differently
        return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                         including_default_value_fields=True)


def _rest_inputs(body: dict, input_names: list[str]) -> tuple[dict[str, np.ndarray], bool]:
    """(named inputs, row format?) from a :predict body."""
    if ("instances" in body) == ("inputs" in body):
        raise ServingError("JSON Value: must have exactly one of 'instances' (row format) or 'inputs' (column format)")
    if "inputs" in body:
        value = body["inputs"]
        if not isinstance(value, dict):
            if len(input_names) != 1:
                raise ServingError(f"the signature has several inputs {input_names}: send 'inputs' as an object")
            value = {input_names[0]: value}
        try:
            return {k: _json_array(v) for k, v in value.items()}, False
        except ValueError:
            raise ServingError("each input must be a rectangular (non-ragged) array") from None
    instances = body["instances"]
    if not isinstance(instances, list) or not instances:
        raise ServingError("'instances' must be a non-empty list")
    if all(isinstance(i, dict) for i in instances):
        keys = set(instances[0])
        if any(set(i) != keys for i in instances):
            raise ServingError("every instance must have the same named inputs")
        columns = {k: [i[k] for i in instances] for k in keys}
    elif len(input_names) == 1:
        columns = {input_names[0]: instances}
    else:
        raise ServingError(f"the signature has several inputs {input_names}: send each instance as an object")
    try:
        return {k: _json_array(v) for k, v in columns.items()}, True
    except ValueError:
        raise ServingError("instances must have equal shapes (they are batched along the first axis)") from None


def create_rest_app(registry: ModelRegistry) -> Flask:
    app = Flask(__name__)

    @app.errorhandler(ServingError)
    def serving_error(error: ServingError):
        return jsonify(error=str(error)), error.http_status

    @app.errorhandler(Exception)
    def unexpected(error: Exception):  # TF Serving's shape, never an HTML page
        code = getattr(error, "code", 500)
        return jsonify(error=str(getattr(error, "description", "") or type(error).__name__)), \
            code if isinstance(code, int) else 500

    def parse_version(version: str | None) -> int | None:
        if version is None:
            return None
        if not version.isdigit():
            raise ServingError(f"invalid version {version!r}")
        return int(version)

    @app.get("/v1/models/<name>")
    @app.get("/v1/models/<name>/versions/<version>")
    def status(name: str, version: str | None = None):
        _, served = registry.get(name, parse_version(version))
        return jsonify(model_version_status=[{"version": str(served), "state": "AVAILABLE",
                                              "status": {"error_code": "OK", "error_message": ""}}])

    @app.get("/v1/models/<name>/metadata")
    @app.get("/v1/models/<name>/versions/<version>/metadata")
    def metadata(name: str, version: str | None = None):
        _, served = registry.get(name, parse_version(version))
        spec = model_pb2.ModelSpec(name=name)
        spec.version.value = served
        return jsonify(model_spec=_proto_json(spec),
                       metadata={"signature_def": _proto_json(registry.signature_defs[name][served])})

    @app.post("/v1/models/<name>:predict")
    @app.post("/v1/models/<name>/versions/<version>:predict")
    def predict(name: str, version: str | None = None):
        body = _json_body(request.get_data())
        signature_name = body.get("signature_name", "")
        if not isinstance(signature_name, str):
            raise ServingError("JSON Value: 'signature_name' must be a string")
        signature, _ = registry.signature(name, parse_version(version), signature_name)
        try:
            inputs, rows = _rest_inputs(body, list(signature.structured_input_signature[1]))
        except RecursionError:
            raise ServingError("JSON Value: inputs nested too deeply") from None
        outputs = run_signature(signature, inputs)
        if not rows:
            if len(outputs) == 1:
                return jsonify(outputs=next(iter(outputs.values())).tolist())
            return jsonify(outputs={k: v.tolist() for k, v in outputs.items()})
        if len(outputs) == 1:
            return jsonify(predictions=next(iter(outputs.values())).tolist())
        count = len(next(iter(outputs.values())))
        return jsonify(predictions=[{k: v[i].tolist() for k, v in outputs.items()} for i in range(count)])

    return app


# --- gRPC --------------------------------------------------------------------------------------

class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, registry: ModelRegistry):
        self.registry = registry

    def Predict(self, request: predict_pb2.PredictRequest, context):  # noqa: N802 - the gRPC method name
        try:
            version = request.model_spec.version.value if request.model_spec.HasField("version") else None
            signature, served = self.registry.signature(request.model_spec.name, version,
                                                        request.model_spec.signature_name)
            try:
                inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
            except (TypeError, ValueError) as error:
                raise ServingError(f"cannot read an input TensorProto: {error}") from None
            outputs = run_signature(signature, inputs, exact_dtypes=True)
        except ServingError as error:
            context.abort(error.code, str(error))
        response = predict_pb2.PredictResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = served
        response.model_spec.signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
        for key in request.output_filter or outputs:
            if key not in outputs:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"output tensor alias not found in signature: {key}")
            response.outputs[key].CopyFrom(tf.make_tensor_proto(outputs[key]))
        return response


def _load(version_dir: Path):
    require_utf8_saved_model_path(version_dir)
    try:
        return tf.saved_model.load(str(version_dir))
    except Exception as error:  # noqa: BLE001 - a corrupt or foreign SavedModel: say which, in one line
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UsageError(f"{version_dir} does not load as a SavedModel ({reason[:200]})") from None


def _signature_defs(version_dir: Path) -> get_model_metadata_pb2.SignatureDefMap:
    """The SignatureDefs of a SavedModel that loaded, as TF Serving reports them (its init op's included)."""
    return get_model_metadata_pb2.SignatureDefMap(signature_def=saved_model_signatures(version_dir))


def start_grpc_server(registry: ModelRegistry, port: int = 0, host: str = "127.0.0.1") -> tuple[grpc.Server, int]:
    """Start a PredictionService server; returns (server, bound port)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4),
                         options=[("grpc.max_send_message_length", 64 << 20),
                                  ("grpc.max_receive_message_length", 64 << 20)])
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(registry), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    server.start()
    return server, bound


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.ArgumentParser(prog="python -m audio_dl.serving", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True, metavar="NAME=BASE_PATH",
                        help="serve a TF Serving base path under NAME (repeatable)")
    parser.add_argument("--rest-port", type=cli.port_number, default=8501,
                        help="REST API port, as TF Serving's (default: %(default)s)")
    parser.add_argument("--grpc-port", type=cli.port_number, default=8500,
                        help="gRPC port, as TF Serving's (default: %(default)s)")
    args = parser.parse_args(argv)
    paths = {}
    for item in args.model:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise UsageError(f"--model {item!r} is not NAME=BASE_PATH")
        if name in paths:
            raise UsageError(f"--model names {name!r} twice ({paths[name]} and {path}); give each model its own name")
        paths[name] = Path(path)
    if args.rest_port == args.grpc_port:
        raise UsageError(f"--rest-port and --grpc-port are both {args.rest_port}")
    for base in paths.values():  # the quick checks before the ports, the slow loading after
        base_versions(base)
    cli.check_port_free("127.0.0.1", args.grpc_port, "gRPC")
    cli.check_port_free("127.0.0.1", args.rest_port, "REST")
    registry = ModelRegistry(paths)
    server, port = start_grpc_server(registry, args.grpc_port)
    try:
        with cli.http_server(create_rest_app(registry), "127.0.0.1", args.rest_port, "REST"):
            print(f"gRPC on 127.0.0.1:{port}; REST on http://127.0.0.1:{args.rest_port}/v1/models/<name>:predict")
            server.wait_for_termination()  # in the main thread, where Ctrl-C and SIGTERM reach cli.run_main
    finally:
        server.stop(grace=1)
    return 0


main.prog = "python -m audio_dl.serving"
main.traces_functions = False  # it calls the SavedModels' signatures: no autograph, no TMPDIR

if __name__ == "__main__":
    raise SystemExit(cli.run_main(main))
