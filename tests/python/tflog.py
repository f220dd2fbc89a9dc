"""The Python side of tests/tests/logs.rs: TensorFlow and TF Serving's own Python API read what
tfgate-batcher wrote, and print JSON for the Rust test to compare with what it sent.

    python tflog.py records DIR        one JSON object per PredictionLog in DIR/*.tfrecord
    python tflog.py points < IDS       the sampling point of each request id (one per line)
    python tflog.py hmac KEY VALUE...  HMAC-SHA256 hex of each value under KEY
"""
import hashlib
import hmac
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def plain(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def tensor(proto):
    import tensorflow as tf

    array = tf.make_ndarray(proto)
    return {
        "dtype": tf.dtypes.as_dtype(proto.dtype).name,
        "shape": list(array.shape),
        "values": [plain(v) for v in array.flatten().tolist()],
    }


def spec(model_spec):
    which = model_spec.WhichOneof("version_choice")
    return {
        "name": model_spec.name,
        "signature_name": model_spec.signature_name,
        "version": model_spec.version.value if which == "version" else None,
        "label": model_spec.version_label if which == "version_label" else None,
    }


def records(directory):
    import glob

    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    files = sorted(glob.glob(os.path.join(directory, "*.tfrecord")))
    # ignore_errors: what the daemon's docs recommend for a directory being written; the test
    # reads closed files, so it counts every record.
    for raw in tf.data.TFRecordDataset(files).ignore_errors():
        log = prediction_log_pb2.PredictionLog.FromString(raw.numpy())
        assert log.WhichOneof("log_type") == "predict_log", log.WhichOneof("log_type")
        metadata = log.log_metadata
        request, response = log.predict_log.request, log.predict_log.response
        print(json.dumps({
            "request_id": metadata.request_origin,
            "timestamp_secs": metadata.timestamp_secs,
            "sampling_rate": metadata.sampling_config.sampling_rate,
            "model_spec": spec(metadata.model_spec),
            "request_spec": spec(request.model_spec),
            "response_spec": spec(response.model_spec),
            "inputs": {name: tensor(t) for name, t in request.inputs.items()},
            "outputs": {name: tensor(t) for name, t in response.outputs.items()},
        }))
    print(json.dumps({"files": len(files)}))


def points():
    for line in sys.stdin:
        request_id = line.strip()
        digest = hashlib.sha256(request_id.encode()).digest()
        print(json.dumps({"id": request_id, "point": int.from_bytes(digest[:8], "big") / 2**64}))


def hmacs(key, values):
    for value in values:
        print(hmac.new(key.encode(), value.encode(), hashlib.sha256).hexdigest())


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "records":
        records(sys.argv[2])
    elif command == "points":
        points()
    elif command == "hmac":
        hmacs(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(f"unknown command {command}")
