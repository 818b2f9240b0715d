//! `marr dev-certs`: a local CA, a server certificate for localhost and a client certificate
//! per principal, for trying mutual TLS on one machine. Never for production.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use super::ClientError;

/// What `dev-certs` wrote.
#[derive(Debug, Clone)]
pub struct DevCerts {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// Each client's name, certificate and key.
    pub clients: Vec<(String, PathBuf, PathBuf)>,
}

fn failed(path: &Path, reason: impl ToString) -> ClientError {
    ClientError::Input {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Writes a file that only its owner may read: private keys.
fn write_private(path: &Path, text: &str) -> Result<(), ClientError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| failed(path, e))?;
    file.write_all(text.as_bytes()).map_err(|e| failed(path, e))
}

/// Issues the CA, the server certificate (localhost, 127.0.0.1, ::1) and one client
/// certificate per name, whose common name is that name.
pub fn write(dir: &Path, clients: &[String]) -> Result<DevCerts, ClientError> {
    std::fs::create_dir_all(dir).map_err(|e| failed(dir, e))?;
    let rcgen = |e: rcgen::Error| failed(dir, e);

    let ca_key = KeyPair::generate().map_err(rcgen)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(rcgen)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "marr development CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).map_err(rcgen)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let ca = dir.join("ca.pem");
    std::fs::write(&ca, ca_cert.pem()).map_err(|e| failed(&ca, e))?;

    let server_key = KeyPair::generate().map_err(rcgen)?;
    let mut server_params = CertificateParams::new(vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ])
    .map_err(rcgen)?;
    server_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server = server_params
        .signed_by(&server_key, &issuer)
        .map_err(rcgen)?;
    let server_cert = dir.join("server.pem");
    let server_key_path = dir.join("server.key");
    std::fs::write(&server_cert, server.pem()).map_err(|e| failed(&server_cert, e))?;
    write_private(&server_key_path, &server_key.serialize_pem())?;

    let mut written = Vec::new();
    for name in clients {
        let key = KeyPair::generate().map_err(rcgen)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(rcgen)?;
        params
            .distinguished_name
            .push(DnType::CommonName, name.as_str());
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &issuer).map_err(rcgen)?;
        let file_name: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let cert_path = dir.join(format!("client-{file_name}.pem"));
        let key_path = dir.join(format!("client-{file_name}.key"));
        std::fs::write(&cert_path, cert.pem()).map_err(|e| failed(&cert_path, e))?;
        write_private(&key_path, &key.serialize_pem())?;
        written.push((name.clone(), cert_path, key_path));
    }
    Ok(DevCerts {
        ca,
        server_cert,
        server_key: server_key_path,
        clients: written,
    })
}
