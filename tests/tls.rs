//! TLS and mutual TLS end to end with certificates from `marr dev-certs`.

use std::path::Path;
use std::process::Command;

use marr::cli::{Connection, ServerArgs};
use marr::config::{Config, TlsConfig};
use marr::proto;
use marr::store::Store;

/// The principals of the mutual TLS server: an administrator known by its certificate.
const PRINCIPALS: &str = "[[principal]]\nname = \"admin\"\nrole = \"admin\"\ncert_cn = \"records-admin\"\n\n[[principal]]\nname = \"inspector\"\nrole = \"inspector\"\nplaces = [\"E92000001\"]\ncert_cn = \"inspector\"\n";

/// Runs `marr dev-certs DIR`, with client certificates for the principals of `config` if given.
fn dev_certs(dir: &Path, config: Option<&Path>) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_marr"));
    command.arg("dev-certs").arg(dir);
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    let output = command.output().expect("dev-certs runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for file in ["ca.pem", "server.pem", "server.key"] {
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

/// Connection settings trusting `ca`'s CA, presenting `client`'s certificate from `certs`.
fn args(server: &str, certs: &Path, ca: &Path, client: Option<&str>) -> ServerArgs {
    let mut args = ServerArgs::plain(server);
    args.ca = Some(ca.join("ca.pem"));
    if let Some(client) = client {
        args.cert = Some(certs.join(format!("client-{client}.pem")));
        args.key = Some(certs.join(format!("client-{client}.key")));
    }
    args
}

#[tokio::test]
async fn mutual_tls_admits_a_client_the_ca_signed_and_refuses_the_rest() {
    let certs = tempfile::tempdir().expect("dir");
    let other = tempfile::tempdir().expect("dir");
    let config_file = certs.path().join("marr.toml");
    let issued_for = certs.path().join("issued.toml");
    std::fs::write(&config_file, PRINCIPALS).expect("config");
    std::fs::write(
        &issued_for,
        format!("{PRINCIPALS}\n[[principal]]\nname = \"former-employee\"\nrole = \"admin\"\n"),
    )
    .expect("config");
    dev_certs(certs.path(), Some(&issued_for));
    for file in ["client-records-admin.pem", "client-inspector.key"] {
        assert!(certs.path().join(file).exists(), "{file} written");
    }
    dev_certs(other.path(), Some(&config_file));

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
        ..Config::load(&config_file).expect("config loads")
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(marr::serve(listener, store, config, async move {
        let _ = stopped.await;
    }));
    let https = format!("https://localhost:{port}");

    assert_eq!(
        list(args(
            &https,
            certs.path(),
            certs.path(),
            Some("records-admin")
        ))
        .await,
        Ok(0),
        "a client the CA signed is the principal its certificate names"
    );
    let inspector = Connection::open(&args(&https, certs.path(), certs.path(), Some("inspector")))
        .await
        .expect("connects");
    let status = inspector
        .directory()
        .register_agency(proto::RegisterAgencyRequest::default())
        .await
        .expect_err("an inspector may not register agencies");
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");

    // The CA signed a certificate for someone the server no longer lists.
    let refused = list(args(
        &https,
        certs.path(),
        certs.path(),
        Some("former-employee"),
    ))
    .await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.contains("does not name a known principal")),
        "{refused:?}"
    );

    assert!(
        list(args(&https, certs.path(), certs.path(), None))
            .await
            .is_err(),
        "no client certificate"
    );
    assert!(
        list(args(
            &https,
            other.path(),
            certs.path(),
            Some("records-admin")
        ))
        .await
        .is_err(),
        "a client certificate from another CA"
    );
    assert!(
        list(args(
            &https,
            certs.path(),
            other.path(),
            Some("records-admin")
        ))
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
    // The web pages too: sessions and records must not cross the network in clear.
    let output = Command::new(env!("CARGO_BIN_EXE_marr"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "0.0.0.0:0",
            "--data-dir",
        ])
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

/// One HTTP/1.1 exchange over TLS to the web front, presenting `client`'s certificate if
/// given: the answer's head and body as text.
async fn https_exchange(port: u16, certs: &Path, client: Option<&str>, request: &str) -> String {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls;

    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(certs.join("ca.pem")).expect("ca") {
        roots
            .add(certificate.expect("ca certificate"))
            .expect("root");
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let config = match client {
        Some(name) => {
            let chain = CertificateDer::pem_file_iter(certs.join(format!("client-{name}.pem")))
                .expect("client certificate")
                .collect::<Result<Vec<_>, _>>()
                .expect("chain");
            let key = PrivateKeyDer::from_pem_file(certs.join(format!("client-{name}.key")))
                .expect("client key");
            builder
                .with_client_auth_cert(chain, key)
                .expect("client auth")
        }
        None => builder.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connects");
    let mut tls = connector
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("TLS handshake");
    tls.write_all(request.as_bytes()).await.expect("request");
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn the_web_front_over_tls_sets_secure_host_cookies_and_signs_in_by_client_certificate() {
    let certs = tempfile::tempdir().expect("dir");
    let config_file = certs.path().join("marr.toml");
    std::fs::write(&config_file, PRINCIPALS).expect("config");
    dev_certs(certs.path(), Some(&config_file));
    let data = tempfile::tempdir().expect("dir");
    let store = Store::open(data.path()).expect("store");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let web = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let web_port = web.local_addr().expect("addr").port();
    let config = Config {
        tls: Some(TlsConfig {
            cert: certs.path().join("server.pem"),
            key: certs.path().join("server.key"),
            client_ca: Some(certs.path().join("ca.pem")),
        }),
        ..Config::load(&config_file).expect("config loads")
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(marr::serve_with_web(
        listener,
        Some(web),
        store,
        config,
        async move {
            let _ = stopped.await;
        },
    ));

    // Without a certificate the public may still read the start page; the sign-in form's
    // cookie is Secure and bound to the host.
    let page = https_exchange(
        web_port,
        certs.path(),
        None,
        "GET /sign-in HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(
        !page.contains("Sign in with your certificate"),
        "no certificate, no offer"
    );
    let cookie_line = page
        .lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie: marr-sign-in=")
        })
        .expect("the form's cookie");
    assert!(cookie_line.contains("Secure"), "{cookie_line}");

    // With the inspector's certificate, the form offers it, and signing in with it makes a
    // `__Host-` session cookie that is Secure, HttpOnly and SameSite=Strict.
    let page = https_exchange(
        web_port,
        certs.path(),
        Some("inspector"),
        "GET /sign-in HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(page.contains("Sign in with your certificate"), "{page}");
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a form token")
        .to_string();
    let body = format!("csrf={csrf}&with=certificate");
    let request = format!(
        "POST /sign-in HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nCookie: marr-sign-in={csrf}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let answer = https_exchange(web_port, certs.path(), Some("inspector"), &request).await;
    assert!(answer.starts_with("HTTP/1.1 303"), "{answer}");
    let session = answer
        .lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie: __host-marr-session=")
        })
        .expect("a session cookie");
    for attribute in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(session.contains(attribute), "{session}");
    }
    let id = session
        .split_once('=')
        .and_then(|(_, rest)| rest.split(';').next())
        .expect("an id");
    let request = format!(
        "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nCookie: __Host-marr-session={id}\r\n\r\n"
    );
    let home = https_exchange(web_port, certs.path(), Some("inspector"), &request).await;
    assert!(home.contains("Signed in as inspector"), "{home}");

    let _ = stop.send(());
    server.await.expect("joins").expect("stops cleanly");
}
