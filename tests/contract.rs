//! Right answers to wrong requests: bytes that are not the method's message, methods the
//! server does not have, reflection for old and new tools, and snapshots that never change.

mod common;

use common::*;
use marr::proto;
use prost::Message;
use tonic::Code;

/// A message whose field 1 holds bytes that are not UTF-8: every request whose field 1 is a
/// string refuses to decode it.
#[derive(Clone, PartialEq, prost::Message)]
struct NotUtf8 {
    #[prost(bytes = "vec", tag = "1")]
    field: Vec<u8>,
}

/// Sends `message` to `method` as raw bytes and returns the answer's code.
async fn send_raw(
    connection: &marr::cli::Connection,
    method: &'static str,
    message: NotUtf8,
) -> Code {
    let mut grpc = connection.client(tonic::client::Grpc::new);
    grpc.ready().await.expect("channel ready");
    let answer: Result<tonic::Response<proto::GetPlaceResponse>, tonic::Status> = grpc
        .unary(
            tonic::Request::new(message),
            http::uri::PathAndQuery::from_static(method),
            tonic_prost::ProstCodec::default(),
        )
        .await;
    match answer {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

#[tokio::test]
async fn bytes_that_are_not_the_message_are_invalid_argument_and_change_nothing() {
    let (server, c) = TestServer::north_east().await;
    let head_before = server.store().head_sequence();
    let garbage = NotUtf8 {
        field: vec![0xff, 0xfe, 0xfd],
    };
    // Health (prost's own codec), a public method, an agency's read and write, unary.
    assert_eq!(
        send_raw(&c.public, "/grpc.health.v1.Health/Check", garbage.clone()).await,
        Code::InvalidArgument
    );
    assert_eq!(
        send_raw(&c.public, "/marr.v1.Directory/GetPlace", garbage.clone()).await,
        Code::InvalidArgument
    );
    assert_eq!(
        send_raw(
            c.agency(NEWCASTLE),
            "/marr.v1.RiskRegister/GetRecord",
            garbage.clone()
        )
        .await,
        Code::InvalidArgument
    );
    assert_eq!(
        send_raw(
            c.agency(NEWCASTLE),
            "/marr.v1.RiskRegister/SubmitRecord",
            NotUtf8 {
                // Field 1 of SubmitRecordRequest is the record: a truncated message.
                field: vec![0x0a, 0x40, 0x01],
            }
        )
        .await,
        Code::InvalidArgument
    );
    assert_eq!(server.store().head_sequence(), head_before);

    // Inside a push stream: the good record before the bad bytes is kept, the stream ends
    // with INVALID_ARGUMENT.
    let good = proto::PushRecordsRequest {
        record: Some(record("CIN-1", 2)),
    };
    let bad = NotUtf8 {
        field: vec![0x0a, 0x05, 0xff],
    };
    let mut grpc = c.agency(NEWCASTLE).client(tonic::client::Grpc::new);
    grpc.ready().await.expect("ready");
    let frames = tokio_stream::iter(vec![good.encode_to_vec(), bad.encode_to_vec()]);
    let answers = grpc
        .streaming(
            tonic::Request::new(frames),
            http::uri::PathAndQuery::from_static("/marr.v1.RiskRegister/PushRecords"),
            RawCodec,
        )
        .await;
    let code = match answers {
        Err(status) => status.code(),
        Ok(response) => {
            let mut stream = response.into_inner();
            loop {
                match stream.message().await {
                    Ok(Some(_)) => continue,
                    Ok(None) => break Code::Ok,
                    Err(status) => break status.code(),
                }
            }
        }
    };
    assert_eq!(code, Code::InvalidArgument);
    assert!(
        head_of(&c, NEWCASTLE, "CIN-1").await.is_some(),
        "the record before the bad bytes was lost"
    );
}

/// Sends pre-encoded messages and reads answers as raw bytes.
#[derive(Clone, Copy)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> Self::Encoder {
        *self
    }
    fn decoder(&mut self) -> Self::Decoder {
        *self
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        use bytes::Buf;
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

#[tokio::test]
async fn a_method_the_server_does_not_have_is_unimplemented_and_not_a_refusal() {
    let (server, c) = TestServer::north_east().await;
    let events_before = server.store().audit_head().expect("audit head");
    for (connection, method) in [
        (&c.public, "/marr.v1.RiskRegister/DeleteEverything"),
        (&c.admin, "/marr.v1.Nothing/Here"),
        (
            c.agency(NEWCASTLE),
            "/grpc.reflection.v1beta.ServerReflection/ServerReflectionInfo",
        ),
    ] {
        assert_eq!(
            send_raw(connection, method, NotUtf8::default()).await,
            Code::Unimplemented,
            "{method}"
        );
    }
    assert_eq!(
        server.store().audit_head().expect("audit head"),
        events_before,
        "asking for a method that does not exist was recorded as a refusal"
    );
}

#[tokio::test]
async fn reflection_answers_both_v1_and_v1alpha() {
    let (_server, c) = TestServer::north_east().await;
    {
        use tonic_reflection::pb::v1::ServerReflectionRequest;
        use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
        let mut client = c.public.client(ServerReflectionClient::new);
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut answers = client
            .server_reflection_info(tokio_stream::iter(vec![request]))
            .await
            .expect("v1 reflection")
            .into_inner();
        let answer = answers
            .message()
            .await
            .expect("answer")
            .expect("one answer");
        let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
            panic!("v1 did not list services");
        };
        assert!(
            list.service
                .iter()
                .any(|s| s.name == "marr.v1.RiskRegister")
        );
    }
    {
        use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
        let mut client = c.public.client(ServerReflectionClient::new);
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(
                "marr.v1.Inspection".into(),
            )),
        };
        let mut answers = client
            .server_reflection_info(tokio_stream::iter(vec![request]))
            .await
            .expect("v1alpha reflection")
            .into_inner();
        let answer = answers
            .message()
            .await
            .expect("answer")
            .expect("one answer");
        let Some(MessageResponse::FileDescriptorResponse(files)) = answer.message_response else {
            panic!("v1alpha did not answer with the file");
        };
        assert!(!files.file_descriptor_proto.is_empty());
    }
}

/// A copy of the North East's ward table with Newcastle under another name.
fn wards_with_newcastle_renamed(name: &str) -> marr::domain::lookup::LookupTable {
    let mut wards = north_east_tables()
        .into_iter()
        .find(|t| t.name.contains("ward"))
        .expect("ward table");
    let code = wards
        .header
        .iter()
        .position(|h| h == "LAD19CD")
        .expect("LAD19CD");
    let named = wards
        .header
        .iter()
        .position(|h| h == "LAD19NM")
        .expect("LAD19NM");
    for row in &mut wards.rows {
        if row.cells[code] == NEWCASTLE {
            row.cells[named] = name.to_string();
        }
    }
    wards
}

#[tokio::test]
async fn a_frozen_snapshot_never_changes_when_agencies_are_renamed_or_places_reimported() {
    let (server, c) = TestServer::north_east().await;
    push_all(
        &c,
        vec![
            rec(
                NEWCASTLE,
                "A-1",
                NEWCASTLE_WARD,
                1,
                proto::Severity::High,
                3,
            ),
            rec(
                NORTHUMBRIA,
                "P-1",
                NEWCASTLE_WARD,
                1,
                proto::Severity::High,
                3,
            ),
        ],
    )
    .await;
    let created = c
        .inspection()
        .create_snapshot(proto::CreateSnapshotRequest {
            place_code: NEWCASTLE.into(),
            filter: None,
            label: "Joint inspection of Newcastle, autumn".into(),
        })
        .await
        .expect("snapshot")
        .into_inner()
        .snapshot
        .expect("snapshot");
    let read = |c: Connection| async move {
        c.inspection()
            .get_snapshot(proto::GetSnapshotRequest { id: created.id })
            .await
            .expect("get snapshot")
            .into_inner()
            .snapshot
            .expect("snapshot")
            .encode_to_vec()
    };
    let frozen = read(c.clone()).await;

    // Rename the council and re-import places with Newcastle under a new name.
    marr::cli::agencies::register(
        &c,
        NEWCASTLE,
        marr::domain::AgencyKind::ChildrenSocialCare,
        "Newcastle City Council, children's services (renamed)",
        &[NEWCASTLE.to_string()],
    )
    .await
    .expect("rename agency");
    marr::cli::places::import_tables(
        &c,
        vec![wards_with_newcastle_renamed("Newcastle (renamed)")],
    )
    .await
    .expect("re-import");
    let live = c
        .inspection()
        .get_place_view(proto::GetPlaceViewRequest {
            place_code: NEWCASTLE.into(),
            ..Default::default()
        })
        .await
        .expect("view")
        .into_inner()
        .view
        .expect("view");
    // Imports add places and never rename known ones today; the snapshot keeps its place
    // names all the same, for the day a newer geography renames them.
    assert!(live.by_agency.iter().any(|a| a.name.ends_with("(renamed)")));

    assert_eq!(
        read(c.clone()).await,
        frozen,
        "the snapshot changed after renames"
    );
    let server = server.restart().await;
    let c = server.connect().await;
    assert_eq!(
        read(c).await,
        frozen,
        "the snapshot changed across a restart"
    );
}
