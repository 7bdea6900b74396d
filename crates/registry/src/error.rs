//! What can go wrong talking to a registry, each failure naming the reference (and the digest, when
//! bytes are refused).

use std::path::PathBuf;

use oci_client::errors::{OciDistributionError, OciErrorCode};
use wasmzip_package::PackageError;

/// A failed push or pull, or a reference or configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The text is not a registry reference.
    #[error("`{text}` is not a registry reference: {reason}")]
    Reference {
        /// The text as given.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A push names a digest, or no tag.
    #[error("{reference}: push needs a tag and no digest (HOST/REPOSITORY:TAG); the digest is what the push reports")]
    NeedsTag {
        /// The reference.
        reference: String,
    },
    /// The client cannot be set up (an extra root that holds no certificate, ...).
    #[error("registry client: {0}")]
    Config(String),
    /// The package to push does not read as a `.wasmzip` whose digests hold, or is of format 1.
    #[error("cannot push {}: {error}", path.display())]
    Package {
        /// The package file.
        path: PathBuf,
        /// Why it was refused (it names the member at fault).
        error: PackageError,
    },
    /// A local file could not be read or written.
    #[error("cannot {action} {}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The underlying error.
        error: std::io::Error,
    },
    /// The registry cannot be reached or is failing: connection refused, a timeout, a 5xx or 429
    /// answer. Worth retrying later.
    #[error("{reference}: registry unavailable: {message}")]
    Unavailable {
        /// The reference.
        reference: String,
        /// What happened.
        message: String,
    },
    /// The TLS connection failed (an unknown certificate authority, a wrong host name, ...).
    #[error("{reference}: TLS: {message}")]
    Tls {
        /// The reference.
        reference: String,
        /// What the TLS layer said.
        message: String,
    },
    /// The registry wants credentials, or refused the ones given.
    #[error("{reference}: {message}")]
    Unauthorized {
        /// The reference.
        reference: String,
        /// Which of the two, and what the registry said.
        message: String,
    },
    /// No such repository, tag, manifest or blob.
    #[error("{reference}: not found in the registry: {message}")]
    NotFound {
        /// The reference.
        reference: String,
        /// What the registry said.
        message: String,
    },
    /// The registry returned bytes whose SHA-256 is not the digest asked for.
    #[error("{reference}: refused {what} {expected}: the registry returned bytes whose digest is {actual}")]
    DigestMismatch {
        /// The reference.
        reference: String,
        /// `manifest` or `blob`.
        what: &'static str,
        /// The digest asked for (`sha256:…`).
        expected: String,
        /// The digest of what came (`sha256:…`).
        actual: String,
    },
    /// The registry returned a different number of bytes than the descriptor gives.
    #[error("{reference}: refused blob {digest}: the manifest gives {expected} bytes, the registry sent {actual}{more}", more = if *.actual > *.expected { " or more" } else { "" })]
    SizeMismatch {
        /// The reference.
        reference: String,
        /// The blob's digest.
        digest: String,
        /// The size the descriptor gives.
        expected: u64,
        /// What was received (when more than expected: where reading stopped).
        actual: u64,
    },
    /// The package layer is not the package file expected.
    #[error("{reference}: refused: its package is archive sha256:{actual}, not the expected sha256:{expected}")]
    ArchiveMismatch {
        /// The reference.
        reference: String,
        /// The archive digest expected (hex).
        expected: String,
        /// The package layer's digest (hex).
        actual: String,
    },
    /// The manifest is malformed or is not a wasmzip package's.
    #[error("{reference}: {message}")]
    NotAPackage {
        /// The reference.
        reference: String,
        /// What is wrong with the manifest.
        message: String,
    },
    /// Any other failure of the registry protocol.
    #[error("{reference}: {message}")]
    Protocol {
        /// The reference.
        reference: String,
        /// What happened.
        message: String,
    },
}

impl RegistryError {
    /// Whether the registry could not be reached or failed on its side (connection refused,
    /// timeouts, 5xx, 429): the operation may succeed later, unlike every other error.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, RegistryError::Unavailable { .. })
    }

    pub(crate) fn io(path: impl Into<PathBuf>, action: &'static str, error: std::io::Error) -> Self {
        RegistryError::Io { path: path.into(), action, error }
    }
}

/// An error and its sources on one line, as `a: b: c` (skipping a source whose text is already in).
pub(crate) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// What kind of transport failure an error chain holds.
enum Transport {
    Unavailable,
    Tls,
    Other,
}

fn transport(error: &(dyn std::error::Error + 'static)) -> Transport {
    use std::io::ErrorKind::*;
    let mut unavailable = false;
    let mut current = Some(error);
    while let Some(e) = current {
        if e.downcast_ref::<rustls::Error>().is_some() {
            return Transport::Tls;
        }
        if let Some(re) = e.downcast_ref::<reqwest::Error>() {
            unavailable |= re.is_connect() || re.is_timeout() || re.status().is_some_and(|s| s.is_server_error());
        }
        let mut next = e.source();
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            unavailable |= matches!(
                io.kind(),
                ConnectionRefused | ConnectionReset | ConnectionAborted | NotConnected | BrokenPipe | TimedOut | UnexpectedEof | HostUnreachable | NetworkUnreachable
            );
            // An I/O error's own `source()` skips the error it wraps.
            if let Some(inner) = io.get_ref() {
                next = Some(inner);
            }
        }
        current = next;
    }
    if unavailable { Transport::Unavailable } else { Transport::Other }
}

/// Turns a distribution-client error into ours. `what` and `digest` say which bytes were asked for
/// (for a digest mismatch); `anonymous` whether credentials were given (for a 401).
pub(crate) fn classify(reference: &str, error: OciDistributionError, what: &'static str, anonymous: bool) -> RegistryError {
    use OciDistributionError as E;
    let reference = reference.to_string();
    let unauthorized = |message: String| {
        let message = if anonymous {
            format!("the registry requires credentials (--registry-user with --registry-password-file, or --registry-token-file): {message}")
        } else {
            format!("the registry refused the credentials: {message}")
        };
        RegistryError::Unauthorized { reference: reference.clone(), message }
    };
    match error {
        E::DigestError(oci_client::errors::DigestError::VerificationError { expected, actual }) => {
            RegistryError::DigestMismatch { reference, what, expected, actual }
        }
        E::UnauthorizedError { url } => unauthorized(format!("401 from {url}")),
        E::AuthenticationFailure(message) => unauthorized(message),
        E::ServerError { code, url, message } => {
            let message = format!("HTTP {code} from {url}{}", if message.trim().is_empty() { String::new() } else { format!(": {}", message.trim()) });
            match code {
                401 | 403 => unauthorized(message),
                404 => RegistryError::NotFound { reference, message },
                429 | 500..=599 => RegistryError::Unavailable { reference, message },
                _ => RegistryError::Protocol { reference, message },
            }
        }
        E::RegistryError { envelope, url } => {
            let message = envelope.errors.iter().map(|e| format!("{:?}: {}", e.code, e.message)).collect::<Vec<_>>().join("; ");
            let message = format!("{message} (from {url})");
            match envelope.errors.first().map(|e| &e.code) {
                Some(OciErrorCode::ManifestUnknown | OciErrorCode::NameUnknown | OciErrorCode::NotFound | OciErrorCode::BlobUnknown) => {
                    RegistryError::NotFound { reference, message }
                }
                Some(OciErrorCode::Unauthorized | OciErrorCode::Denied) => unauthorized(message),
                Some(OciErrorCode::Toomanyrequests) => RegistryError::Unavailable { reference, message },
                _ => RegistryError::Protocol { reference, message },
            }
        }
        E::RequestError(e) if e.status().is_some() => {
            let code = e.status().expect("checked").as_u16();
            let message = chain(&e);
            match code {
                401 | 403 => unauthorized(message),
                404 => RegistryError::NotFound { reference, message },
                429 | 500..=599 => RegistryError::Unavailable { reference, message },
                _ => RegistryError::Protocol { reference, message },
            }
        }
        // Transparent variants: their own `source()` skips the wrapped error, so start from it.
        E::RequestError(e) => from_transport(reference, &e),
        E::IoError(e) => from_transport(reference, &e),
        other => from_transport(reference, &other),
    }
}

fn from_transport(reference: String, error: &(dyn std::error::Error + 'static)) -> RegistryError {
    let message = chain(error);
    match transport(error) {
        Transport::Unavailable => RegistryError::Unavailable { reference, message },
        Transport::Tls => RegistryError::Tls { reference, message },
        Transport::Other => RegistryError::Protocol { reference, message },
    }
}

/// As [`classify`], for an I/O error out of a blob stream (which wraps the client's own errors).
pub(crate) fn classify_stream(reference: &str, error: std::io::Error) -> RegistryError {
    from_transport(reference.to_string(), &error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_client::errors::{OciEnvelope, OciError};

    fn envelope(code: OciErrorCode) -> OciDistributionError {
        OciDistributionError::RegistryError {
            envelope: OciEnvelope { errors: vec![OciError { code, message: "the message".into(), detail: serde_json::Value::Null }] },
            url: "http://127.0.0.1:1/v2/x/manifests/1".into(),
        }
    }

    #[test]
    fn registry_answers_become_kinds_that_name_the_reference() {
        let r = "127.0.0.1:5000/team/orders:1.4.0";
        let e = classify(r, envelope(OciErrorCode::ManifestUnknown), "manifest", true);
        assert!(matches!(e, RegistryError::NotFound { .. }), "{e:?}");
        assert!(e.to_string().starts_with(r) && e.to_string().contains("the message"), "{e}");
        assert!(matches!(classify(r, envelope(OciErrorCode::NameUnknown), "manifest", true), RegistryError::NotFound { .. }));
        assert!(classify(r, envelope(OciErrorCode::Toomanyrequests), "manifest", true).is_unavailable());
        assert!(matches!(classify(r, envelope(OciErrorCode::DigestInvalid), "blob", true), RegistryError::Protocol { .. }));
        let asked = classify(r, OciDistributionError::UnauthorizedError { url: "u".into() }, "manifest", true).to_string();
        assert!(asked.contains("requires credentials"), "{asked}");
        let refused = classify(r, OciDistributionError::UnauthorizedError { url: "u".into() }, "manifest", false).to_string();
        assert!(refused.contains("refused the credentials"), "{refused}");
    }

    #[test]
    fn server_errors_and_rate_limits_are_unavailable_client_errors_are_not() {
        let server = |code| OciDistributionError::ServerError { code, url: "http://h/v2/".into(), message: "busy".into() };
        for code in [500, 502, 503, 504, 429] {
            assert!(classify("h/x:1", server(code), "manifest", true).is_unavailable(), "{code}");
        }
        assert!(matches!(classify("h/x:1", server(404), "manifest", true), RegistryError::NotFound { .. }));
        assert!(matches!(classify("h/x:1", server(403), "manifest", false), RegistryError::Unauthorized { .. }));
        assert!(!classify("h/x:1", server(400), "manifest", true).is_unavailable());
    }

    #[test]
    fn io_failures_in_the_chain_decide_availability() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        assert!(classify_stream("h/x:1", refused).is_unavailable());
        let other = std::io::Error::other("something odd");
        assert!(matches!(classify_stream("h/x:1", other), RegistryError::Protocol { .. }));
        let tls = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer));
        let e = classify_stream("h/x:1", tls);
        assert!(matches!(e, RegistryError::Tls { .. }) && !e.is_unavailable(), "{e:?}");
    }

    #[test]
    fn a_digest_mismatch_names_both_digests() {
        let e = classify(
            "h/x:1",
            OciDistributionError::DigestError(oci_client::errors::DigestError::VerificationError { expected: "sha256:aa".into(), actual: "sha256:bb".into() }),
            "manifest",
            true,
        );
        let text = e.to_string();
        assert!(text.contains("manifest sha256:aa") && text.contains("sha256:bb") && text.starts_with("h/x:1"), "{text}");
    }
}
