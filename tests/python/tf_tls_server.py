"""A real TensorFlow model behind grpcio with TLS, as TF Serving serves one: TF Serving's own
service definitions (tensorflow-serving-api), a SavedModel written and loaded by TensorFlow, and
grpcio's ssl_server_credentials (BoringSSL) checking client certificates. Run by
tests/tests/secure_legs.rs.

    python tf_tls_server.py DIR CERT KEY CLIENT_CA

Saves half_plus_two (y = 0.5 x + 2, float32, any shape) as a SavedModel under DIR, serves
PredictionService (Predict, GetModelMetadata) and ModelService (GetModelStatus) for it on a free
loopback port with mutual TLS, prints "listening on PORT" and serves until it is killed.
Each Predict's batch size (dim 0) is appended to DIR/batches, one per line.
"""

import os
import sys
import threading
from concurrent import futures

import grpc
import tensorflow as tf
from google.protobuf import any_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

MODEL = "half_plus_two"
VERSION = 1
SIGNATURE = "serving_default"


class HalfPlusTwo(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec(shape=None, dtype=tf.float32, name="x")])
    def serve(self, x):
        return {"y": tf.add(tf.multiply(x, 0.5), 2.0)}


def saved_model(directory):
    path = os.path.join(directory, MODEL, str(VERSION))
    module = HalfPlusTwo()
    tf.saved_model.save(module, path, signatures={SIGNATURE: module.serve})
    return tf.saved_model.load(path).signatures[SIGNATURE]


def signature_def(function):
    """The SignatureDef TF Serving reports for the loaded signature."""
    sig = meta_graph_pb2.SignatureDef(method_name="tensorflow/serving/predict")
    for name, spec in function.structured_input_signature[1].items():
        sig.inputs[name].name = f"serving_default_{name}:0"
        sig.inputs[name].dtype = spec.dtype.as_datatype_enum
        sig.inputs[name].tensor_shape.CopyFrom(spec.shape.as_proto())
    for name, spec in function.structured_outputs.items():
        sig.outputs[name].name = f"StatefulPartitionedCall:{name}"
        sig.outputs[name].dtype = spec.dtype.as_datatype_enum
        sig.outputs[name].tensor_shape.CopyFrom(spec.shape.as_proto())
    return sig


def check_spec(spec, context):
    if spec.name != MODEL:
        context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({spec.name})")
    if spec.HasField("version") and spec.version.value != VERSION:
        context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Specific({spec.name}, {spec.version.value})")


class Prediction(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, function, batches):
        self.function = function
        self.batches = batches
        self.lock = threading.Lock()

    def Predict(self, request, context):
        check_spec(request.model_spec, context)
        if set(request.inputs) != {"x"}:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"expected input x, got {sorted(request.inputs)}")
        x = tf.make_ndarray(request.inputs["x"])
        y = self.function(x=tf.constant(x, dtype=tf.float32))["y"]
        with self.lock, open(self.batches, "a") as log:
            log.write(f"{x.shape[0] if x.ndim else 1}\n")
        response = predict_pb2.PredictResponse()
        response.model_spec.name = MODEL
        response.model_spec.version.value = VERSION
        response.model_spec.signature_name = SIGNATURE
        response.outputs["y"].CopyFrom(tf.make_tensor_proto(y.numpy()))
        return response

    def GetModelMetadata(self, request, context):
        check_spec(request.model_spec, context)
        signatures = get_model_metadata_pb2.SignatureDefMap()
        signatures.signature_def[SIGNATURE].CopyFrom(signature_def(self.function))
        packed = any_pb2.Any()
        packed.Pack(signatures)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = MODEL
        response.model_spec.version.value = VERSION
        response.metadata["signature_def"].CopyFrom(packed)
        return response


class Status(model_service_pb2_grpc.ModelServiceServicer):
    def GetModelStatus(self, request, context):
        check_spec(request.model_spec, context)
        response = get_model_status_pb2.GetModelStatusResponse()
        status = response.model_version_status.add()
        status.version = VERSION
        status.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
        return response


def main():
    directory, cert, key, client_ca = sys.argv[1:5]
    function = saved_model(directory)
    read = lambda path: open(path, "rb").read()
    credentials = grpc.ssl_server_credentials(
        [(read(key), read(cert))], root_certificates=read(client_ca), require_client_auth=True
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        Prediction(function, os.path.join(directory, "batches")), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(Status(), server)
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    print(f"listening on {port}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
