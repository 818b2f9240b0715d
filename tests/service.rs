//! The standard services every gRPC operator and tool expects: health and reflection.

mod common;

use common::TestServer;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

async fn channel(server: &TestServer) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(server.url.clone())
        .expect("url")
        .connect()
        .await
        .expect("connect")
}

#[tokio::test]
async fn health_reports_serving_for_the_server_and_each_service() {
    let server = TestServer::start().await;
    let mut health = HealthClient::new(channel(&server).await);
    for service in ["", "marr.v1.RiskRegister", "marr.v1.Directory"] {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health check")
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "service {service:?}");
    }
}

#[tokio::test]
async fn reflection_lists_the_marr_services() {
    let server = TestServer::start().await;
    let mut reflection = ServerReflectionClient::new(channel(&server).await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection")
        .into_inner();
    let answer = answers
        .message()
        .await
        .expect("answer")
        .expect("one answer");
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("expected a service list, got {:?}", answer.message_response);
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "marr.v1.RiskRegister",
        "marr.v1.Directory",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
}

async fn serving_status(url: &str) -> Option<i32> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .ok()?
        .connect()
        .await
        .ok()?;
    HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .ok()
        .map(|answer| answer.into_inner().status)
}

#[tokio::test]
async fn health_says_not_serving_while_the_store_opens_then_serving() {
    let mut server = common::OpeningServer::start().await;
    let url = server.url.clone();
    assert_eq!(
        serving_status(&url).await,
        Some(ServingStatus::NotServing as i32),
        "listening, but the store is not open yet"
    );
    server.open();
    let mut status = None;
    for _ in 0..200 {
        status = serving_status(&url).await;
        if status == Some(ServingStatus::Serving as i32) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(status, Some(ServingStatus::Serving as i32));
    server.stop().await;
}
