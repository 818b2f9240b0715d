//! TLS and mutual TLS end to end with certificates from `marr dev-certs`.

use std::path::Path;
use std::process::Command;

use marr::cli::{Connection, ServerArgs};
use marr::config::{Config, TlsConfig};
use marr::proto;
use marr::store::Store;

fn dev_certs(dir: &Path) {
    let output = Command::new(env!("CARGO_BIN_EXE_marr"))
        .arg("dev-certs")
        .arg(dir)
        .output()
        .expect("dev-certs runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for file in [
        "ca.pem",
        "server.pem",
        "server.key",
        "client-dev-client.pem",
        "client-dev-client.key",
    ] {
        assert!(dir.join(file).exists(), "{file} written");
    }
}

/// Lists agencies over a fresh connection; any failure to connect or call is an error.
async fn list(args: ServerArgs) -> Result<usize, String> {
    let connection = Connection::open(&args).await.map_err(|e| e.to_string())?;
    let answer = connection
        .directory()
        .list_agencies(proto::ListAgenciesRequest {})
        .await
        .map_err(|e| e.to_string())?;
    Ok(answer.into_inner().agencies.len())
}

fn args(server: &str, certs: &Path, ca: &Path, with_client_cert: bool) -> ServerArgs {
    let mut args = ServerArgs::plain(server);
    args.ca = Some(ca.join("ca.pem"));
    if with_client_cert {
        args.cert = Some(certs.join("client-dev-client.pem"));
        args.key = Some(certs.join("client-dev-client.key"));
    }
    args
}

#[tokio::test]
async fn mutual_tls_admits_a_client_the_ca_signed_and_refuses_the_rest() {
    let certs = tempfile::tempdir().expect("dir");
    let other = tempfile::tempdir().expect("dir");
    dev_certs(certs.path());
    dev_certs(other.path());

    let data = tempfile::tempdir().expect("dir");
    let store = Store::open(data.path()).expect("store");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let config = Config {
        tls: Some(TlsConfig {
            cert: certs.path().join("server.pem"),
            key: certs.path().join("server.key"),
            client_ca: Some(certs.path().join("ca.pem")),
        }),
        ..Config::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(marr::serve(listener, store, config, async move {
        let _ = stopped.await;
    }));
    let https = format!("https://localhost:{port}");

    assert_eq!(
        list(args(&https, certs.path(), certs.path(), true)).await,
        Ok(0),
        "a signed client gets in"
    );
    assert!(
        list(args(&https, certs.path(), certs.path(), false))
            .await
            .is_err(),
        "no client certificate"
    );
    assert!(
        list(args(&https, other.path(), certs.path(), true))
            .await
            .is_err(),
        "a client certificate from another CA"
    );
    assert!(
        list(args(&https, certs.path(), other.path(), true))
            .await
            .is_err(),
        "a server the client's CA did not sign"
    );
    assert!(
        list(ServerArgs::plain(format!("http://127.0.0.1:{port}")))
            .await
            .is_err(),
        "plain text"
    );

    let _ = stop.send(());
    server.await.expect("server").expect("stops");
}

#[test]
fn serve_refuses_a_non_loopback_address_without_tls() {
    let data = tempfile::tempdir().expect("dir");
    let output = Command::new(env!("CARGO_BIN_EXE_marr"))
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(data.path())
        .output()
        .expect("serve runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0 without TLS"),
        "{stderr}"
    );
}
