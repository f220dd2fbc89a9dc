"""A custom MLServer runtime for tfgate's tests: models that mirror tfs-sim's
(tools/tfs-sim/src/signatures.rs), so a test can put MLServer where tfs-sim stands and check the
same answers. Run by tests/src/mlserver.rs as `mlserver start DIR`, with this folder on
PYTHONPATH and the model-settings.json files of this folder copied into DIR.

- HalfPlusTwo: input `x`, output `y`, FP32, shape [-1] or [-1, 1]; y = 0.5 x + 2 at version 1
  and y = 0.5 x + 3 at version 2 (the model's `parameters.version`), as tfs-sim computes.
- AllTypes: every input `NAME` echoed as `NAME_out`, same datatype, shape and values: one input
  for each datatype MLServer carries (all of the protocol's but BF16, which MLServer's datatype
  enum lacks).

Environment:
- TFGATE_MLSERVER_CALLS=PATH: one JSON line per predict call the runtime serves (model, version,
  rows: dim 0 of its first input), so a test sees how calls were batched before they got here
  (by tfgate, by MLServer's adaptive batching, or not at all).
- TFGATE_MLSERVER_WATCH_STDIN=1: the server exits when its stdin closes, that is when the test
  process that started it is gone, even killed (a server shared by a test binary's tests is
  never dropped).

Never imports tritonclient: its generated protos and MLServer's both register package
`inference`.
"""

import json
import os
import sys
import threading

import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.errors import InferenceError
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput

_CALLS = os.environ.get("TFGATE_MLSERVER_CALLS")


def _watch_stdin():
    # The file descriptor itself: a daemon thread blocked in sys.stdin's buffered reader would
    # hold its lock when the interpreter shuts down normally.
    try:
        while os.read(0, 65536):
            pass
    except OSError:
        pass
    os._exit(0)


if os.environ.get("TFGATE_MLSERVER_WATCH_STDIN") == "1" and not getattr(sys, "_tfgate_watching", False):
    sys._tfgate_watching = True
    threading.Thread(target=_watch_stdin, name="tfgate-stdin-watch", daemon=True).start()


def _record(model, payload):
    if not _CALLS:
        return
    rows = payload.inputs[0].shape[0] if payload.inputs and payload.inputs[0].shape else 0
    line = json.dumps({"model": model.name, "version": model.version, "rows": rows})
    with open(_CALLS, "a") as f:
        f.write(line + "\n")


def _datatype(tensor):
    """A tensor's datatype as its string (MLServer keeps some as its enum, some as str)."""
    return getattr(tensor.datatype, "value", tensor.datatype)


def _requested(payload, outputs):
    """Only the outputs the request names, when it names any (the protocol's `outputs`)."""
    if not payload.outputs:
        return outputs
    wanted = [o.name for o in payload.outputs]
    known = {o.name for o in outputs}
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise InferenceError(f"unknown output {unknown[0]!r}")
    return [o for o in outputs if o.name in wanted]


class HalfPlusTwo(MLModel):
    async def load(self) -> bool:
        self._offset = 2.0 if (self.version or "1") == "1" else 3.0
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        _record(self, payload)
        inputs = {i.name: i for i in payload.inputs}
        if set(inputs) != {"x"}:
            raise InferenceError(f"half_plus_two takes one input, x; got {sorted(inputs)}")
        x = inputs["x"]
        if _datatype(x) != "FP32":
            raise InferenceError(f"x must be FP32, not {_datatype(x)}")
        if len(x.shape) not in (1, 2) or (len(x.shape) == 2 and x.shape[1] != 1):
            raise InferenceError(f"x must have shape [-1] or [-1, 1], not {x.shape}")
        values = NumpyCodec.decode_input(x).astype(np.float32)
        y = (np.float32(0.5) * values + np.float32(self._offset)).astype(np.float32)
        # y has x's shape ([N] stays [N]; NumpyCodec.encode_output would make it [N, 1]).
        y_out = ResponseOutput(name="y", datatype="FP32", shape=list(x.shape), data=y.reshape(-1).tolist())
        outputs = _requested(payload, [y_out])
        return InferenceResponse(model_name=self.name, model_version=self.version, id=payload.id, outputs=outputs)


class AllTypes(MLModel):
    async def load(self) -> bool:
        self._declared = {t.name: _datatype(t) for t in (self.settings.inputs or [])}
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        _record(self, payload)
        outputs = []
        for i in payload.inputs:
            declared = self._declared.get(i.name)
            if declared is None:
                raise InferenceError(f"all_types has no input {i.name!r}")
            if _datatype(i) != declared:
                raise InferenceError(f"{i.name} must be {declared}, not {_datatype(i)}")
            # The values as they came (decoded from raw contents or JSON by MLServer), so the
            # echo shows exactly what tfgate sent.
            outputs.append(ResponseOutput(name=f"{i.name}_out", datatype=declared, shape=i.shape, data=i.data))
        outputs = _requested(payload, outputs)
        return InferenceResponse(model_name=self.name, model_version=self.version, id=payload.id, outputs=outputs)
