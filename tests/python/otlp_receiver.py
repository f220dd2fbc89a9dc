"""An OTLP/gRPC trace receiver on OpenTelemetry's own service definitions (the official
`opentelemetry-proto` package and grpcio), as a collector listens on 4317. Run by
tests/tests/traces.rs.

    python otlp_receiver.py OUT           # every span, as JSON lines
    python otlp_receiver.py --count OUT   # only how many (scripts/bench-traces.sh)

Serves TraceService/Export on a free loopback port, prints "listening on PORT", and appends
every span it receives to OUT as one JSON line: its resource's service.name, trace and span ids
(hex), parent span id, name, kind, attributes, links (trace and span ids), and status. With
--count it writes only "SPANS EXPORTS" to OUT after each export (a collector's cheapest work:
read the message, keep nothing).
"""

import json
import sys
import threading
from concurrent import futures

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

KINDS = {value: name.removeprefix("SPAN_KIND_").lower() for name, value in trace_pb2.Span.SpanKind.items()}


def value(any_value):
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def attributes(pairs):
    return {pair.key: value(pair.value) for pair in pairs}


class Counter(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, out):
        self.out = out
        self.lock = threading.Lock()
        self.spans = 0
        self.exports = 0

    def Export(self, request, context):
        spans = sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
        with self.lock:
            self.spans += spans
            self.exports += 1
            with open(self.out, "w") as f:
                f.write(f"{self.spans} {self.exports}\n")
        return trace_service_pb2.ExportTraceServiceResponse()


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, out):
        self.out = out
        self.lock = threading.Lock()

    def Export(self, request, context):
        lines = []
        for resource_spans in request.resource_spans:
            service = attributes(resource_spans.resource.attributes).get("service.name")
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    lines.append(json.dumps({
                        "service": service,
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex(),
                        "name": span.name,
                        "kind": KINDS.get(span.kind, str(span.kind)),
                        "start_ns": span.start_time_unix_nano,
                        "end_ns": span.end_time_unix_nano,
                        "attributes": attributes(span.attributes),
                        "links": [{"trace_id": l.trace_id.hex(), "span_id": l.span_id.hex()} for l in span.links],
                        "status": trace_pb2.Status.StatusCode.Name(span.status.code),
                        "status_message": span.status.message,
                    }))
        with self.lock, open(self.out, "a") as f:
            f.writelines(line + "\n" for line in lines)
        return trace_service_pb2.ExportTraceServiceResponse()


def main():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    if sys.argv[1] == "--count":
        servicer = Counter(sys.argv[2])
    else:
        servicer = Receiver(sys.argv[1])
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"listening on {port}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
