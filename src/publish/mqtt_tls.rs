//! TLS to the MQTT broker through the system's TLS library (native-tls: OpenSSL on Linux,
//! kept current by the distribution's security updates). Chosen over rumqttc's rustls
//! feature, which pins rustls-webpki 0.102 with open advisories (docs/operations.md, "MQTT").
//!
//! Only the CA in `ca_file` is trusted (the system's roots are not): a broker certificate
//! signed by anyone else is refused, as with a pinned private CA.

use std::path::Path;

use native_tls::{Certificate, Identity, Protocol, TlsConnector};

use super::MqttTls;

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("mqtt.tls: {path}: {source}; check the file")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "mqtt.tls.ca_file: {path}: {message}; it must hold PEM certificates (-----BEGIN CERTIFICATE-----)"
    )]
    Ca { path: String, message: String },
    #[error(
        "mqtt.tls client certificate/key ({cert}, {key}): {message}; the key must be PKCS#8 PEM \
         (convert with `openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.pk8`)"
    )]
    Identity {
        cert: String,
        key: String,
        message: String,
    },
    #[error("mqtt.tls: the TLS library refused the settings: {0}")]
    Build(String),
}

fn read(path: &Path) -> Result<Vec<u8>, TlsSetupError> {
    std::fs::read(path).map_err(|source| TlsSetupError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// Every certificate of a PEM file (a CA bundle may hold several).
fn certificates(path: &Path) -> Result<Vec<Certificate>, TlsSetupError> {
    const END: &str = "-----END CERTIFICATE-----";
    let fail = |message: String| TlsSetupError::Ca {
        path: path.display().to_string(),
        message,
    };
    let text = String::from_utf8(read(path)?).map_err(|_| fail("not text".into()))?;
    let blocks: Vec<&str> = text
        .split_inclusive(END)
        .filter(|block| block.contains("-----BEGIN CERTIFICATE-----"))
        .collect();
    if blocks.is_empty() {
        return Err(fail("no certificate in it".into()));
    }
    blocks
        .iter()
        .map(|block| {
            Certificate::from_pem(block.trim().as_bytes()).map_err(|e| fail(e.to_string()))
        })
        .collect()
}

/// The connector for `tls`: the CA file's certificates as the only roots, TLS 1.2 or newer,
/// and the client identity when one is configured.
pub fn connector(tls: &MqttTls) -> Result<TlsConnector, TlsSetupError> {
    let mut builder = TlsConnector::builder();
    builder
        .disable_built_in_roots(true)
        .min_protocol_version(Some(Protocol::Tlsv12));
    for certificate in certificates(&tls.ca_file)? {
        builder.add_root_certificate(certificate);
    }
    if let (Some(cert), Some(key)) = (&tls.client_cert_file, &tls.client_key_file) {
        let identity = Identity::from_pkcs8(&read(cert)?, &read(key)?).map_err(|e| {
            TlsSetupError::Identity {
                cert: cert.display().to_string(),
                key: key.display().to_string(),
                message: e.to_string(),
            }
        })?;
        builder.identity(identity);
    }
    builder
        .build()
        .map_err(|e| TlsSetupError::Build(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(ca: &Path) -> MqttTls {
        MqttTls {
            ca_file: ca.to_owned(),
            client_cert_file: None,
            client_key_file: None,
        }
    }

    #[test]
    fn files_that_are_not_certificates_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("nope.pem");
        let e = connector(&tls(&missing)).unwrap_err().to_string();
        assert!(
            e.contains("nope.pem") && e.contains("check the file"),
            "{e}"
        );
        let garbage = dir.path().join("ca.pem");
        std::fs::write(&garbage, "password = hunter2\n").expect("write");
        let e = connector(&tls(&garbage)).unwrap_err().to_string();
        assert!(
            e.contains("ca.pem") && e.contains("no certificate in it"),
            "{e}"
        );
        // The file's content is never echoed (it may be a key put in the wrong field).
        assert!(!e.contains("hunter2"), "{e}");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
        let e = connector(&tls(&garbage)).unwrap_err().to_string();
        assert!(
            e.contains("ca.pem") && e.contains("PEM certificates"),
            "{e}"
        );
    }
}
