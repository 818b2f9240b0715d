"""A partner agency's system written in Python: it generates its stubs from the register's
proto files, pushes records through the bidirectional stream, reads a place view as an
inspector and watches alerts as a safeguarding board, against a real `marr serve`.

Usage: client.py PROTO_DIR STUB_DIR HOST:PORT
Tokens come from MARR_AGENCY_TOKEN, MARR_INSPECTOR_TOKEN and MARR_BOARD_TOKEN.
"""

import datetime
import hashlib
import os
import subprocess
import sys


def generate(proto_dir, stub_dir):
    protos = sorted(
        os.path.join("marr", "v1", name)
        for name in os.listdir(os.path.join(proto_dir, "marr", "v1"))
        if name.endswith(".proto")
    )
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I", proto_dir,
         "--python_out", stub_dir, "--grpc_python_out", stub_dir, *protos],
        check=True,
    )
    sys.path.insert(0, stub_dir)


def bearer(name):
    return (("authorization", "Bearer " + os.environ[name]),)


def main():
    proto_dir, stub_dir, address = sys.argv[1:4]
    generate(proto_dir, stub_dir)
    import grpc
    from google.protobuf.timestamp_pb2 import Timestamp
    from marr.v1 import alerts_pb2, alerts_pb2_grpc, inspection_pb2, inspection_pb2_grpc
    from marr.v1 import risk_register_pb2, risk_register_pb2_grpc, types_pb2

    channel = grpc.insecure_channel(address)
    now = datetime.datetime.now(datetime.timezone.utc)

    def stamp(hours_ago):
        t = Timestamp()
        t.FromDatetime(now - datetime.timedelta(hours=hours_ago))
        return t

    def record(n, severity):
        return types_pb2.RiskRecord(
            agency_id="E08000021",
            local_ref="PY-%d" % n,
            subject_key=hashlib.sha256(b"python subject %d" % n).hexdigest(),
            place_code="E05011451",
            client_group=types_pb2.CLIENT_GROUP_CHILD_PROTECTION_PLAN,
            category=types_pb2.RISK_CATEGORY_NEGLECT,
            severity=severity,
            status=types_pb2.RECORD_STATUS_ACTIVE,
            assessed_at=stamp(5),
            source_updated_at=stamp(4),
            lawful_basis=types_pb2.LAWFUL_BASIS_CHILDREN_ACT_1989_S47,
            note="Pushed from Python",
        )

    records = [record(n, types_pb2.SEVERITY_MEDIUM) for n in range(9)]
    records.append(record(9, types_pb2.SEVERITY_CRITICAL))
    register = risk_register_pb2_grpc.RiskRegisterStub(channel)
    answers = list(register.PushRecords(
        (risk_register_pb2.PushRecordsRequest(record=r) for r in records),
        metadata=bearer("MARR_AGENCY_TOKEN"),
    ))
    outcomes = [(a.index, a.outcome) for a in answers]
    expected = [(i, risk_register_pb2.OUTCOME_ACCEPTED) for i in range(len(records))]
    if outcomes != expected:
        sys.exit("push answers out of order or refused: %r" % (answers,))
    print("pushed %d records: all accepted, answered in order" % len(records))

    inspection = inspection_pb2_grpc.InspectionStub(channel)
    view = inspection.GetPlaceView(
        inspection_pb2.GetPlaceViewRequest(place_code="E08000021"),
        metadata=bearer("MARR_INSPECTOR_TOKEN"),
    ).view
    if view.total_active != len(records):
        sys.exit("place view shows %d active records, expected %d" % (view.total_active, len(records)))
    print("place view of %s: %d active" % (view.place.name, view.total_active))

    alerts = alerts_pb2_grpc.AlertsStub(channel)
    stream = alerts.Watch(
        alerts_pb2.WatchRequest(from_sequence=0, filter=alerts_pb2.AlertFilter(place_code="E08000021")),
        metadata=bearer("MARR_BOARD_TOKEN"),
        timeout=20,
    )
    for event in stream:
        if event.WhichOneof("event") == "alert":
            alert = event.alert
            if alert.kind == alerts_pb2.ALERT_KIND_CRITICAL_RISK and alert.records[0].local_ref == "PY-9":
                print("alert %d: critical_risk for %s" % (alert.sequence, alert.records[0].local_ref))
                stream.cancel()
                break
    else:
        sys.exit("the critical risk alert never came")

    try:
        register.GetRecord(
            risk_register_pb2.GetRecordRequest(agency_id="E08000021", local_ref="PY-0"),
        )
        sys.exit("a call without credentials was answered")
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.UNAUTHENTICATED:
            sys.exit("expected UNAUTHENTICATED, got %s" % error.code())
    print("without credentials: UNAUTHENTICATED")


if __name__ == "__main__":
    main()
