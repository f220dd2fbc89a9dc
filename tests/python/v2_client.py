"""NVIDIA's official Open Inference Protocol client (`tritonclient`, unchanged) driven by the tests
of tests/tests/open_inference.rs.

    python v2_client.py --url HOST:PORT --protocol http|grpc < OPS

OPS is a JSON list of operations; for each, one JSON line on stdout, in order:

    {"op": "server_live"} / {"op": "server_ready"}       -> {"ok": true, "value": BOOL}
    {"op": "server_metadata"}                             -> {"ok": true, "metadata": {...}}
    {"op": "model_ready", "model": M, "version": V}       -> {"ok": true, "value": BOOL}
    {"op": "model_metadata", "model": M, "version": V}    -> {"ok": true, "metadata": {...}}
    {"op": "infer", "model": M, "version": V, "id": ID,
     "inputs": [{"name", "datatype", "shape", "data", "binary": BOOL, "send_shape": [...]}],
     "outputs": [{"name", "binary": BOOL}],               (optional: every output, default form)
     "parameters": {...}}                                  (optional: custom request parameters)
        -> {"ok": true, "model_name", "model_version", "id",
            "outputs": [{"name", "datatype", "shape", "data", "binary": BOOL}]}
    {"op": "concurrent", "ops": [OP, ...]}                -> {"ok": true, "results": [RESULT, ...]}
        (each OP on its own thread and client, started together; results in the order given)

Every operation may carry "headers" ({"authorization": "Bearer ..."}); over gRPC they go as
metadata (names lowercased, as gRPC requires). A failed operation prints
{"ok": false, "status": S, "message": M}: S is the HTTP status ("404") over HTTP and the gRPC
code's name ("NOT_FOUND") over gRPC; "client" where tritonclient itself refused the call and
"connection" where HTTP could not connect.

Data: "data" is flat, row-major. BOOL elements are JSON booleans, BYTES elements strings (sent
as UTF-8) or {"b64": "..."}; FP16 and BF16 are numbers, sent as binary (neither has a JSON form).
Output BYTES elements come back as strings where they are UTF-8, else {"b64": ...}. "binary" on
an input (default true, as tritonclient's) chooses the binary tensor data extension over JSON; on
an output, the same for the answer (HTTP only: gRPC always carries raw contents); with no
"outputs", tritonclient.http asks for every output in binary (`binary_data_output`). "send_shape"
replaces the input's shape after its data is set: a shape that disagrees with the data, which
tritonclient itself would refuse.

Never imports mlserver: its generated protos and tritonclient's both register package
`inference`.
"""

import argparse
import base64
import json
import sys
import threading

import ml_dtypes
import numpy as np

NUMPY = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "BF16": ml_dtypes.bfloat16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": np.object_,
}


def to_bytes(element):
    if isinstance(element, dict):
        return base64.b64decode(element["b64"])
    return element.encode("utf-8")


def from_bytes(element):
    if isinstance(element, str):
        return element
    try:
        return element.decode("utf-8")
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(element).decode()}


def array(spec):
    datatype = spec["datatype"]
    shape = spec["shape"]
    if datatype == "BYTES":
        values = np.array([to_bytes(e) for e in spec["data"]], dtype=np.object_)
    else:
        values = np.array(spec["data"], dtype=NUMPY[datatype])
    return values.reshape(shape)


def plain(values, datatype):
    flat = values.reshape(-1)
    if datatype == "BYTES":
        return [from_bytes(e) for e in flat.tolist()]
    if datatype in ("FP16", "BF16"):
        return [float(e) for e in flat.astype(np.float32).tolist()]
    return flat.tolist()


class Driver:
    def __init__(self, url, protocol):
        self.url = url
        self.protocol = protocol
        if protocol == "http":
            import tritonclient.http as client
        else:
            import tritonclient.grpc as client
        self.module = client
        self.client = self.connect()

    def connect(self):
        if self.protocol == "http":
            return self.module.InferenceServerClient(self.url, connection_timeout=10.0, network_timeout=30.0)
        return self.module.InferenceServerClient(self.url)

    def headers(self, op):
        headers = op.get("headers") or {}
        if self.protocol == "grpc":
            return {name.lower(): value for name, value in headers.items()}
        return headers

    def run(self, op, client=None):
        from tritonclient.utils import InferenceServerException

        client = client or self.client
        try:
            return {"ok": True, **getattr(self, "op_" + op["op"])(client, op)}
        except InferenceServerException as error:
            status = error.status() or ""
            # gRPC: "StatusCode.NOT_FOUND"; HTTP: "404"; none: the client's own refusal.
            return {"ok": False, "status": status.removeprefix("StatusCode.") or "client", "message": error.message()}
        except OSError as error:  # HTTP: no connection, or one closed under the call
            return {"ok": False, "status": "connection", "message": repr(error)}

    def timeout(self):
        return {"client_timeout": 30.0} if self.protocol == "grpc" else {}

    def op_server_live(self, client, op):
        return {"value": client.is_server_live(headers=self.headers(op), **self.timeout())}

    def op_server_ready(self, client, op):
        return {"value": client.is_server_ready(headers=self.headers(op), **self.timeout())}

    def op_server_metadata(self, client, op):
        kwargs = {"as_json": True} if self.protocol == "grpc" else {}
        return {"metadata": client.get_server_metadata(headers=self.headers(op), **kwargs, **self.timeout())}

    def op_model_ready(self, client, op):
        value = client.is_model_ready(
            op["model"], model_version=op.get("version", ""), headers=self.headers(op), **self.timeout()
        )
        return {"value": value}

    def op_model_metadata(self, client, op):
        kwargs = {"as_json": True} if self.protocol == "grpc" else {}
        metadata = client.get_model_metadata(
            op["model"], model_version=op.get("version", ""), headers=self.headers(op), **kwargs, **self.timeout()
        )
        # gRPC's JSON form writes int64 dims as strings: numbers, as over HTTP.
        for tensor in metadata.get("inputs", []) + metadata.get("outputs", []):
            tensor["shape"] = [int(d) for d in tensor.get("shape", [])]
        return {"metadata": metadata}

    def op_infer(self, client, op):
        inputs = []
        for spec in op["inputs"]:
            tensor = self.module.InferInput(spec["name"], list(spec["shape"]), spec["datatype"])
            values = array(spec)
            if self.protocol == "http":
                tensor.set_data_from_numpy(values, binary_data=spec.get("binary", True))
            else:
                tensor.set_data_from_numpy(values)
            if "send_shape" in spec:
                tensor.set_shape(list(spec["send_shape"]))
            inputs.append(tensor)
        outputs = None
        if "outputs" in op:
            outputs = []
            for spec in op["outputs"]:
                if self.protocol == "http":
                    outputs.append(self.module.InferRequestedOutput(spec["name"], binary_data=spec.get("binary", True)))
                else:
                    outputs.append(self.module.InferRequestedOutput(spec["name"]))
        # gRPC: the call's deadline. (HTTP's `timeout` would be Triton's request parameter of that
        # name; the client's network_timeout bounds the call instead.)
        kwargs = {"client_timeout": 30.0} if self.protocol == "grpc" else {}
        result = client.infer(
            op["model"],
            inputs,
            model_version=op.get("version", ""),
            outputs=outputs,
            request_id=op.get("id", ""),
            headers=self.headers(op),
            parameters=op.get("parameters"),
            **kwargs,
        )
        if self.protocol == "http":
            response = result.get_response()
        else:
            response = result.get_response(as_json=True)
        answered = []
        for output in response.get("outputs", []):
            datatype = output["datatype"]
            values = result.as_numpy(output["name"])
            parameters = output.get("parameters") or {}
            answered.append({
                "name": output["name"],
                "datatype": datatype,
                "shape": [int(d) for d in output.get("shape", [])],
                "data": None if values is None else plain(values, datatype),
                "binary": self.protocol == "grpc" or "binary_data_size" in parameters,
            })
        return {
            "model_name": response.get("model_name"),
            "model_version": response.get("model_version", ""),
            "id": response.get("id", ""),
            "outputs": answered,
        }

    def op_concurrent(self, _client, op):
        results = [None] * len(op["ops"])
        start = threading.Barrier(len(op["ops"]))

        def one(index, inner):
            client = self.connect()
            try:
                start.wait()
                results[index] = self.run(inner, client)
            except Exception as error:  # reported, not raised: the other threads finish
                results[index] = {"ok": False, "status": "client", "message": repr(error)}
            finally:
                client.close()

        threads = [threading.Thread(target=one, args=(i, inner)) for i, inner in enumerate(op["ops"])]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return {"results": results}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True, help="HOST:PORT")
    parser.add_argument("--protocol", choices=("http", "grpc"), required=True)
    args = parser.parse_args()
    ops = json.load(sys.stdin)
    driver = Driver(args.url.removeprefix("http://"), args.protocol)
    for op in ops:
        print(json.dumps(driver.run(op)), flush=True)
    driver.client.close()


if __name__ == "__main__":
    main()
