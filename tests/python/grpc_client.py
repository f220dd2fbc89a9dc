"""TF Serving's official Python client (tensorflow-serving-api, grpcio) against tfgate's gRPC
server (nginx with the module, then the daemon), run by tests/tests/grpc_python.rs.

    python grpc_client.py CHECK TARGET [ARG...]

Each check prints what it saw and exits 0 when every assertion holds (1 with the reason
otherwise), so the Rust test reports Python's own message.
"""

import sys
import threading
import time

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)


def stub(target):
    channel = grpc.insecure_channel(target.removeprefix("http://"))
    return channel, prediction_service_pb2_grpc.PredictionServiceStub(channel)


def request(model, inputs, version=None, label=None):
    req = predict_pb2.PredictRequest()
    req.model_spec.name = model
    if version is not None:
        req.model_spec.version.value = version
    if label is not None:
        req.model_spec.version_label = label
    for name, proto in inputs.items():
        req.inputs[name].CopyFrom(proto)
    return req


def typed(values, dtype):
    """A TensorProto with the typed *_val field, as older clients write it."""
    proto = tf.make_tensor_proto(values, dtype=dtype)
    array = tf.make_ndarray(proto)
    out = type(proto)()
    out.dtype = proto.dtype
    out.tensor_shape.CopyFrom(proto.tensor_shape)
    if dtype == tf.string:
        out.string_val.extend(array.reshape(-1).tolist())
    elif dtype in (tf.float32,):
        out.float_val.extend(array.reshape(-1).tolist())
    elif dtype in (tf.float64,):
        out.double_val.extend(array.reshape(-1).tolist())
    elif dtype in (tf.int32,):
        out.int_val.extend(array.reshape(-1).tolist())
    elif dtype in (tf.int64,):
        out.int64_val.extend(array.reshape(-1).tolist())
    elif dtype in (tf.bool,):
        out.bool_val.extend(array.reshape(-1).tolist())
    return out


def check_dtypes(target):
    """Every dtype of echo_types, in tensor_content (make_tensor_proto's way) and in the typed
    fields; the answer holds the request's own values."""
    _, prediction = stub(target)
    values = {
        "f32": (np.array([1.5, -2.0], dtype=np.float32), tf.float32),
        "f64": (np.array([1e300, 0.25], dtype=np.float64), tf.float64),
        "i32": (np.array([-7, 2147483647], dtype=np.int32), tf.int32),
        "i64": (np.array([-(2**62), 5], dtype=np.int64), tf.int64),
        "b": (np.array([True, False]), tf.bool),
        "s": (np.array([b"abc", b"\x00\xff"], dtype=object), tf.string),
    }
    for style in ("tensor_content", "typed"):
        inputs = {}
        for name, (array, dtype) in values.items():
            inputs[name] = tf.make_tensor_proto(array, dtype=dtype) if style == "tensor_content" else typed(array, dtype)
        answer = prediction.Predict(request("echo_types", inputs), timeout=10)
        for name, (array, _) in values.items():
            got = tf.make_ndarray(answer.outputs[name + "_out"])
            assert np.array_equal(got, array), f"{style} {name}: sent {array!r}, got {got!r}"
        print(f"{style}: every dtype came back as sent")


def check_versions(target):
    """Default, version and label (the canary split is nginx's: label canary is version 2)."""
    _, prediction = stub(target)
    x = {"x": tf.make_tensor_proto(np.array([1.0, 2.0], dtype=np.float32))}
    cases = [({}, [2.5, 3.0], 1), ({"version": 2}, [3.5, 4.0], 2), ({"label": "canary"}, [3.5, 4.0], 2)]
    for spec, expected, version in cases:
        answer = prediction.Predict(request("half_plus_two", x, **spec), timeout=10)
        got = tf.make_ndarray(answer.outputs["y"]).tolist()
        assert got == expected, f"{spec}: {got} != {expected}"
        assert answer.model_spec.version.value == version, f"{spec}: answered as version {answer.model_spec.version.value}"
    print("default, version 2 and label canary each answered by the right version")


def check_status(target, token, code):
    """A call whose refusal the client sees as gRPC status `code` (a name such as
    UNAUTHENTICATED); token "-" for none."""
    _, prediction = stub(target)
    metadata = [] if token == "-" else [("authorization", f"Bearer {token}")]
    model = sys.argv[5] if len(sys.argv) > 5 else "half_plus_two"
    x = {"x": tf.make_tensor_proto(np.array([1.0], dtype=np.float32))}
    try:
        prediction.Predict(request(model, x), timeout=10, metadata=metadata)
    except grpc.RpcError as error:
        assert error.code() == getattr(grpc.StatusCode, code), f"{error.code()}: {error.details()}"
        assert error.details(), "a refusal says why"
        print(f"{code}: {error.details()}")
        return
    raise AssertionError(f"expected {code}, the call succeeded")


def check_ok_with_token(target, token):
    _, prediction = stub(target)
    x = {"x": tf.make_tensor_proto(np.array([4.0], dtype=np.float32))}
    answer = prediction.Predict(request("half_plus_two", x), timeout=10, metadata=[("authorization", f"Bearer {token}")])
    assert tf.make_ndarray(answer.outputs["y"]).tolist() == [4.0]
    print("accepted with its token")


def check_deadline(target):
    """The queue holds the lone call (fixed dispatch, long delay) past the client's deadline."""
    _, prediction = stub(target)
    x = {"x": tf.make_tensor_proto(np.array([1.0], dtype=np.float32))}
    started = time.monotonic()
    try:
        prediction.Predict(request("half_plus_two", x), timeout=0.3)
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED, f"{error.code()}: {error.details()}"
        assert time.monotonic() - started < 3
        print("DEADLINE_EXCEEDED")
        return
    raise AssertionError("the call was answered")


def check_cancel(target):
    """A call cancelled while queued behind a slow batch."""
    _, prediction = stub(target)
    x = {"x": tf.make_tensor_proto(np.array([1.0], dtype=np.float32))}
    first = prediction.Predict.future(request("half_plus_two", x), timeout=10)
    time.sleep(0.1)
    queued = prediction.Predict.future(request("half_plus_two", {"x": tf.make_tensor_proto(np.array([7.0, 8.0, 9.0], dtype=np.float32))}), timeout=10)
    time.sleep(0.1)
    assert queued.cancel(), "the call had already finished"
    assert tf.make_ndarray(first.result().outputs["y"]).tolist() == [2.5]
    print("cancelled while queued")


def check_concurrent(target, rest_url):
    """REST and gRPC clients at once on one model: each gets its own rows."""
    import json
    import urllib.request

    _, prediction = stub(target)
    errors = []

    def grpc_client(i):
        xs = np.array([i, i + 0.5], dtype=np.float32)
        answer = prediction.Predict(request("half_plus_two", {"x": tf.make_tensor_proto(xs)}), timeout=10)
        got = tf.make_ndarray(answer.outputs["y"]).tolist()
        if got != (0.5 * xs + 2).tolist():
            errors.append(f"gRPC {i}: {got}")

    def rest_client(i):
        body = json.dumps({"instances": [1000.0 + i]}).encode()
        with urllib.request.urlopen(urllib.request.Request(rest_url, body), timeout=10) as r:
            got = json.load(r)["predictions"]
        if got != [0.5 * (1000.0 + i) + 2]:
            errors.append(f"REST {i}: {got}")

    threads = [threading.Thread(target=f, args=(i,)) for i in range(40) for f in (grpc_client, rest_client)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    print("80 clients, REST and gRPC, each got its own rows")


def check_malformed(target):
    """Bytes that are not a PredictRequest: INVALID_ARGUMENT, and the server serves on."""
    channel, prediction = stub(target)
    raw = channel.unary_unary("/tensorflow.serving.PredictionService/Predict", request_serializer=None, response_deserializer=None)
    for message in (b"\x0a\x20\x0a", b"\x0a\x0f\x0a\x0dhalf_plus_two\x12\x03\xff\xff\xff"):
        try:
            raw(message, timeout=10)
            raise AssertionError(f"{message!r} was answered")
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, f"{message!r}: {error.code()} {error.details()}"
    x = {"x": tf.make_tensor_proto(np.array([2.0], dtype=np.float32))}
    assert tf.make_ndarray(prediction.Predict(request("half_plus_two", x), timeout=10).outputs["y"]).tolist() == [3.0]
    print("malformed messages refused with INVALID_ARGUMENT; served on")


def check_compressed(target):
    """A gzip-compressed message: refused with a clear status, not misread."""
    _, prediction = stub(target)
    x = {"x": tf.make_tensor_proto(np.array([1.0], dtype=np.float32))}
    try:
        prediction.Predict(request("half_plus_two", x), timeout=10, compression=grpc.Compression.Gzip)
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.UNIMPLEMENTED, f"{error.code()}: {error.details()}"
        assert "compress" in error.details(), error.details()
        print(f"UNIMPLEMENTED: {error.details()}")
        return
    raise AssertionError("a compressed call was answered")


def check_unknown_methods(target):
    """Methods tfgate does not serve, in any service: UNIMPLEMENTED from the module, not an HTTP
    error the client cannot read ("Received http2 header with status: 404")."""
    channel, _ = stub(target)
    # ModelStreamInfer: a Triton extension of the Open Inference Protocol's service, which tfgate
    # routes only for its six standard methods.
    for method in (
        "/inference.GRPCInferenceService/ModelStreamInfer",
        "/tensorflow.serving.ModelService/HandleReloadConfigRequest",
    ):
        raw = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        try:
            raw(b"", timeout=10)
            raise AssertionError(f"{method} was answered")
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.UNIMPLEMENTED, f"{method}: {error.code()} {error.details()}"
            assert "not served through tfgate" in error.details(), f"{method}: {error.details()}"
    print("UNIMPLEMENTED for every method tfgate does not serve")


def check_metadata(target):
    channel, prediction = stub(target)
    req = get_model_metadata_pb2.GetModelMetadataRequest()
    req.model_spec.name = "half_plus_two"
    req.model_spec.version_label = "canary"
    req.metadata_field.append("signature_def")
    answer = prediction.GetModelMetadata(req, timeout=10)
    assert answer.model_spec.version.value == 2, answer.model_spec
    status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
        get_model_status_pb2.GetModelStatusRequest(model_spec=req.model_spec), timeout=10
    )
    assert [s.version for s in status.model_version_status] == [2], status
    print("metadata and status of the version nginx resolved")


def check_quota(target):
    """A plan of 2 requests a day: two answers with the draft's fields in their metadata, then
    RESOURCE_EXHAUSTED with retry-after in the trailers."""
    _, prediction = stub(target)
    x = {"x": tf.make_tensor_proto(np.array([1.0], dtype=np.float32))}
    for left in (1, 0):
        answer, call = prediction.Predict.with_call(request("half_plus_two", x), timeout=10)
        metadata = dict(call.initial_metadata())
        assert "ratelimit-policy" in metadata, metadata
        assert f"r={left}" in metadata.get("ratelimit", ""), metadata
        assert tf.make_ndarray(answer.outputs["y"]).tolist() == [2.5]
    try:
        prediction.Predict(request("half_plus_two", x), timeout=10)
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, f"{error.code()}: {error.details()}"
        trailers = dict(error.trailing_metadata() or ())
        assert int(trailers.get("retry-after", "0")) >= 1, trailers
        print(f"RESOURCE_EXHAUSTED: {error.details()} (retry-after {trailers['retry-after']})")
        return
    raise AssertionError("the third call was answered")


CHECKS = {
    "quota": check_quota,
    "dtypes": check_dtypes,
    "versions": check_versions,
    "status": check_status,
    "ok_with_token": check_ok_with_token,
    "deadline": check_deadline,
    "cancel": check_cancel,
    "concurrent": check_concurrent,
    "malformed": check_malformed,
    "compressed": check_compressed,
    "metadata": check_metadata,
    "unknown_methods": check_unknown_methods,
}

if __name__ == "__main__":
    try:
        CHECKS[sys.argv[1]](*sys.argv[2:5 if sys.argv[1] == "status" else None])
    except AssertionError as failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        sys.exit(1)
