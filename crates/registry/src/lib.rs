//! `.wasmzip` packages in OCI registries: push a checked package under a tag, pull one back by tag or
//! digest, with every byte checked against the digest it was asked for.
//!
//! A package is one OCI image manifest (see [`layout`] and `docs/registry.md`): our
//! [`ARTIFACT_TYPE`], the CNCF Wasm config ([`WASM_CONFIG_MEDIA_TYPE`]) so that Wasm tooling
//! recognises it, each component as an [`WASM_LAYER_MEDIA_TYPE`] layer, and the package file itself
//! as one [`PACKAGE_LAYER_MEDIA_TYPE`] layer whose digest is the archive digest `wasmzip verify`
//! prints. Pulling checks the manifest bytes against a requested manifest digest and the package
//! bytes against their descriptor while they stream to a temporary file, which becomes the
//! destination only once everything holds. Whether the package is *trusted* is not decided here:
//! the caller verifies the pulled file (signature, trust, member digests) before using it.
#![deny(missing_docs)]

mod error;
pub mod layout;
mod reference;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt as _;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

pub use error::RegistryError;
pub use reference::{MAX_NAME_LEN, MAX_TAG_LEN, Reference};

/// The artifact type of a package's manifest (package format 2).
pub const ARTIFACT_TYPE: &str = "application/vnd.wasmzip.package.v2";
/// The media type of the layer that is the whole `.wasmzip` file, byte for byte.
pub const PACKAGE_LAYER_MEDIA_TYPE: &str = "application/vnd.wasmzip.package.v2+zip";
/// The media type of a component's layer (CNCF Wasm OCI artifact layout).
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";
/// The media type of the config (CNCF Wasm OCI artifact layout).
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";

/// How long a connection to a registry may take to open.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a registry may leave a response (or a blob in flight) without a byte.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Bytes read from the package file per upload chunk.
const UPLOAD_CHUNK: usize = 4 * 1024 * 1024;

/// How to authenticate to registries.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Credentials {
    /// No credentials. Registries that hand out anonymous bearer tokens still work.
    #[default]
    Anonymous,
    /// A user name and password: HTTP basic authentication, or exchanged for a bearer token where the
    /// registry asks for one (its `WWW-Authenticate: Bearer realm=…` challenge).
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
    /// A registry bearer token, sent as it is (`Authorization: Bearer TOKEN`) with every request.
    Bearer(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { username, .. } => write!(f, "Basic {{ username: {username:?}, password: <redacted> }}"),
            Credentials::Bearer(_) => f.write_str("Bearer(<redacted>)"),
        }
    }
}

/// How to reach registries. The default is anonymous, with TLS for every host but the loopback IP
/// literals.
#[derive(Debug, Clone, Default)]
pub struct RegistryConfig {
    /// The credentials, for every registry.
    pub credentials: Credentials,
    /// Hosts reached over plain HTTP besides `127.0.0.1` and `[::1]`: `HOST` (any port) or
    /// `HOST:PORT`. Everything else, `localhost` included, uses TLS.
    pub plain_http_hosts: Vec<String>,
    /// PEM files' contents (each may hold several certificates) whose certificates are trusted as
    /// roots besides the webpki (Mozilla) roots.
    pub extra_roots_pem: Vec<Vec<u8>>,
}

/// Where a pushed package is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The reference pushed to, with the manifest digest: `host/repo:tag@sha256:…`.
    pub reference: Reference,
    /// `sha256:…` of the manifest.
    pub manifest_digest: String,
    /// Hex SHA-256 of the package file: the package layer's digest.
    pub archive_digest: String,
}

/// What a pull wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    /// The reference pulled, with the manifest digest.
    pub reference: Reference,
    /// `sha256:…` of the manifest.
    pub manifest_digest: String,
    /// Hex SHA-256 of the package file written.
    pub archive_digest: String,
    /// Its size in bytes.
    pub size: u64,
}

/// A client for pushing and pulling packages; cheap to clone, shared by every task.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    auth: RegistryAuth,
    anonymous: bool,
    plain_http_hosts: Vec<String>,
    roots: Vec<CertificateDer<'static>>,
    /// One distribution client per registry host (they keep its connections and tokens).
    clients: Mutex<HashMap<String, Client>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("plain_http_hosts", &self.inner.plain_http_hosts).field("roots", &self.inner.roots.len()).finish_non_exhaustive()
    }
}

impl Registry {
    /// A client for `config`. Installs ring as the process's default rustls provider if none is.
    pub fn new(config: RegistryConfig) -> Result<Registry, RegistryError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut roots: Vec<CertificateDer<'static>> = webpki_root_certs::TLS_SERVER_ROOT_CERTS.to_vec();
        for (i, pem) in config.extra_roots_pem.iter().enumerate() {
            let certs = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| RegistryError::Config(format!("extra root certificate file {}: {e}", i + 1)))?;
            if certs.is_empty() {
                return Err(RegistryError::Config(format!("extra root certificate file {} holds no PEM certificate", i + 1)));
            }
            roots.extend(certs);
        }
        for host in &config.plain_http_hosts {
            if host.is_empty() || host.contains('/') {
                return Err(RegistryError::Config(format!("plain-HTTP host `{host}`: expected HOST or HOST:PORT")));
            }
        }
        let (auth, anonymous) = match config.credentials {
            Credentials::Anonymous => (RegistryAuth::Anonymous, true),
            Credentials::Basic { username, password } => (RegistryAuth::Basic(username, password), false),
            Credentials::Bearer(token) => (RegistryAuth::Bearer(token), false),
        };
        let registry = Registry {
            inner: Arc::new(Inner { auth, anonymous, plain_http_hosts: config.plain_http_hosts, roots, clients: Mutex::new(HashMap::new()) }),
        };
        // Fail here, not at the first push, if the TLS setup cannot be built.
        registry.build_client(false)?;
        Ok(registry)
    }

    /// Whether `registry` (`host[:port]`) is reached over plain HTTP: the loopback IP literals, and
    /// the hosts configured.
    pub fn uses_plain_http(&self, registry: &str) -> bool {
        let (host, port) = split_host_port(registry);
        if host == "127.0.0.1" || host == "[::1]" {
            return true;
        }
        self.inner.plain_http_hosts.iter().any(|entry| {
            let (h, p) = split_host_port(entry);
            h.eq_ignore_ascii_case(host) && (p.is_none() || p == port)
        })
    }

    fn build_client(&self, plain_http: bool) -> Result<Client, RegistryError> {
        let certs = self.inner.roots.iter().map(|c| Certificate { encoding: CertificateEncoding::Der, data: c.as_ref().to_vec() }).collect();
        let config = ClientConfig {
            protocol: if plain_http { ClientProtocol::Http } else { ClientProtocol::Https },
            tls_certs_only: certs,
            connect_timeout: Some(CONNECT_TIMEOUT),
            read_timeout: Some(READ_TIMEOUT),
            user_agent: concat!("wasmzip/", env!("CARGO_PKG_VERSION")),
            ..ClientConfig::default()
        };
        Client::try_from(config).map_err(|e| RegistryError::Config(error::chain(&e)))
    }

    fn client(&self, reference: &Reference) -> Result<Client, RegistryError> {
        let key = reference.registry().to_ascii_lowercase();
        let mut clients = self.inner.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = clients.get(&key) {
            return Ok(client.clone());
        }
        let client = self.build_client(self.uses_plain_http(reference.registry()))?;
        clients.insert(key, client.clone());
        Ok(client)
    }

    fn classify(&self, reference: &Reference, what: &'static str) -> impl Fn(oci_client::errors::OciDistributionError) -> RegistryError + '_ {
        let text = reference.to_string();
        move |e| error::classify(&text, e, what, self.inner.anonymous)
    }

    /// Uploads the package file (checked first: it must read as a format-2 `.wasmzip` whose member
    /// digests hold) under `reference` (a tag); returns where it is by digest. Blobs the repository
    /// already has are not uploaded again, and the same package always gives the same manifest.
    pub async fn push(&self, package: &Path, reference: &Reference) -> Result<Pushed, RegistryError> {
        if reference.tag().is_none() || reference.digest().is_some() {
            return Err(RegistryError::NeedsTag { reference: reference.to_string() });
        }
        let path = package.to_path_buf();
        let report = tokio::task::spawn_blocking(move || wasmzip_package::inspect_package(&path))
            .await
            .map_err(|e| RegistryError::Config(format!("package check task: {e}")))?
            .map_err(|error| RegistryError::Package { path: package.to_path_buf(), error })?;
        if report.manifest.schema != wasmzip_package::manifest::MANIFEST_SCHEMA {
            let error = wasmzip_package::PackageError::Manifest {
                message: format!("schema {} (package format 1) is not pushed; repack it with this wasmzip to format 2", report.manifest.schema),
            };
            return Err(RegistryError::Package { path: package.to_path_buf(), error });
        }
        let size = tokio::fs::metadata(package).await.map_err(|e| RegistryError::io(package, "read", e))?.len();
        let (name, version) = (report.manifest.name.to_string(), report.manifest.version.to_string());
        let components: Vec<(String, Arc<[u8]>)> = report.components.iter().map(|(n, b)| (n.to_string(), b.clone())).collect();
        let parts: Vec<(&str, &[u8])> = components.iter().map(|(n, b)| (n.as_str(), &b[..])).collect();
        let artifact = layout::build(
            layout::PackageParts { name: &name, version: &version, package_digest: &report.digest, archive: (&report.archive_digest, size) },
            &parts,
        );

        let client = self.client(reference)?;
        let oci = reference.to_oci();
        client.auth(&oci, &self.inner.auth, RegistryOperation::Push).await.map_err(self.classify(reference, "manifest"))?;
        let blob_missing = async |digest: &str| client.blob_exists(&oci, digest).await.map(|exists| !exists).map_err(self.classify(reference, "blob"));
        if blob_missing(&artifact.config_descriptor.digest).await? {
            client.push_blob(&oci, artifact.config.clone(), &artifact.config_descriptor.digest).await.map_err(self.classify(reference, "blob"))?;
        }
        for ((_, bytes), layer) in components.iter().zip(&artifact.layers) {
            if blob_missing(&layer.digest).await? {
                client.push_blob(&oci, bytes::Bytes::copy_from_slice(bytes), &layer.digest).await.map_err(self.classify(reference, "blob"))?;
            }
        }
        let package_layer = artifact.layers.last().expect("the package layer");
        if blob_missing(&package_layer.digest).await? {
            let file = tokio::fs::File::open(package).await.map_err(|e| RegistryError::io(package, "open", e))?;
            let chunks = futures_util::stream::try_unfold(file, |mut file| async move {
                let mut buf = vec![0u8; UPLOAD_CHUNK];
                let mut filled = 0;
                while filled < buf.len() {
                    match file.read(&mut buf[filled..]).await? {
                        0 => break,
                        n => filled += n,
                    }
                }
                if filled == 0 {
                    return Ok(None);
                }
                buf.truncate(filled);
                Ok(Some((bytes::Bytes::from(buf), file)))
            });
            client.push_blob_stream(&oci, chunks, &package_layer.digest, Some(size)).await.map_err(|e| match self.classify(reference, "blob")(e) {
                RegistryError::Protocol { reference, message } if message.contains("DigestInvalid") => RegistryError::Protocol {
                    reference,
                    message: format!("the registry found another digest than {} in the upload: did {} change while it was pushed? ({message})", package_layer.digest, package.display()),
                },
                other => other,
            })?;
        }
        let content_type = http::HeaderValue::from_static(layout::OCI_MANIFEST_MEDIA_TYPE);
        client.push_manifest_raw(&oci, artifact.manifest.clone(), content_type).await.map_err(self.classify(reference, "manifest"))?;
        Ok(Pushed { reference: reference.with_digest(&artifact.manifest_digest), manifest_digest: artifact.manifest_digest, archive_digest: report.archive_digest })
    }

    /// Downloads the package layer of `reference` into `dest` (written to a temporary file beside
    /// it, fsynced, renamed), refusing bytes whose digest differs from the manifest's descriptor, and
    /// from `expected_archive` (hex SHA-256 of the whole package file, `sha256:` optional) when given.
    /// A manifest pulled by digest must hash to that digest. On any failure `dest` is left as it was.
    pub async fn pull(&self, reference: &Reference, dest: &Path, expected_archive: Option<&str>) -> Result<Pulled, RegistryError> {
        let expected_archive = match expected_archive {
            Some(text) => {
                let hex = text.strip_prefix("sha256:").unwrap_or(text);
                reference::check_digest(&format!("sha256:{hex}")).map_err(|e| RegistryError::Config(format!("expected archive digest: {e}")))?;
                Some(hex.to_string())
            }
            None => None,
        };
        let client = self.client(reference)?;
        let oci = reference.to_oci();
        client.auth(&oci, &self.inner.auth, RegistryOperation::Pull).await.map_err(self.classify(reference, "manifest"))?;
        let (manifest, _) = client
            .pull_manifest_raw(&oci, &self.inner.auth, &[layout::OCI_MANIFEST_MEDIA_TYPE])
            .await
            .map_err(self.classify(reference, "manifest"))?;
        let manifest_digest = layout::sha256_digest(&manifest);
        if let Some(asked) = reference.digest()
            && asked != manifest_digest
        {
            return Err(RegistryError::DigestMismatch { reference: reference.to_string(), what: "manifest", expected: asked.to_string(), actual: manifest_digest });
        }
        let layer = layout::package_layer(&manifest).map_err(|message| RegistryError::NotAPackage { reference: reference.to_string(), message })?;
        let layer_hex = layer.digest.strip_prefix("sha256:").expect("checked by package_layer").to_string();
        if let Some(expected) = expected_archive
            && expected != layer_hex
        {
            return Err(RegistryError::ArchiveMismatch { reference: reference.to_string(), expected, actual: layer_hex });
        }
        let pinned = reference.with_digest(&manifest_digest);
        let size = self.download(&client, &pinned, &layer, dest).await?;
        Ok(Pulled { reference: pinned, manifest_digest, archive_digest: layer_hex, size })
    }

    /// Streams blob `layer` into a temporary file beside `dest`, hashing and counting as it goes, and
    /// renames it to `dest` once size and digest hold.
    async fn download(&self, client: &Client, reference: &Reference, layer: &layout::Descriptor, dest: &Path) -> Result<u64, RegistryError> {
        let text = reference.to_string();
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let file_name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "package".into());
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{file_name}."))
            .suffix(".partial")
            .tempfile_in(&dir)
            .map_err(|e| RegistryError::io(&dir, "create a temporary file in", e))?;
        let std_file = temp.as_file().try_clone().map_err(|e| RegistryError::io(temp.path(), "open", e))?;
        let mut out = tokio::fs::File::from_std(std_file);
        let oci = reference.to_oci();
        let mut stream = client.pull_blob_stream(&oci, layer.digest.as_str()).await.map_err(self.classify(reference, "blob"))?.stream;
        let mut hasher = Sha256::new();
        let mut received = 0u64;
        let mut failure = None;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => {
                    received += bytes.len() as u64;
                    if received > layer.size {
                        return Err(RegistryError::SizeMismatch { reference: text, digest: layer.digest.clone(), expected: layer.size, actual: received });
                    }
                    hasher.update(&bytes);
                    out.write_all(&bytes).await.map_err(|e| RegistryError::io(temp.path(), "write", e))?;
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        // Our own digest decides first: the client's check at the end of the stream says the same less precisely.
        if received == layer.size {
            let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
            if actual != layer.digest {
                return Err(RegistryError::DigestMismatch { reference: text, what: "blob", expected: layer.digest.clone(), actual });
            }
        }
        if let Some(e) = failure {
            return Err(error::classify_stream(&text, e));
        }
        if received != layer.size {
            return Err(RegistryError::SizeMismatch { reference: text, digest: layer.digest.clone(), expected: layer.size, actual: received });
        }
        out.flush().await.map_err(|e| RegistryError::io(temp.path(), "write", e))?;
        out.sync_all().await.map_err(|e| RegistryError::io(temp.path(), "sync", e))?;
        drop(out);
        temp.persist(dest).map_err(|e| RegistryError::io(dest, "rename into", e.error))?;
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(received)
    }
}

/// `host[:port]` split; an IPv6 literal keeps its brackets.
fn split_host_port(text: &str) -> (&str, Option<&str>) {
    if text.starts_with('[') {
        return match text.find(']') {
            Some(end) => (&text[..=end], text[end + 1..].strip_prefix(':')),
            None => (text, None),
        };
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host, Some(port)),
        _ => (text, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(plain: &[&str]) -> Registry {
        Registry::new(RegistryConfig { plain_http_hosts: plain.iter().map(|s| s.to_string()).collect(), ..RegistryConfig::default() }).unwrap()
    }

    #[test]
    fn plain_http_only_for_loopback_literals_and_the_hosts_named() {
        let r = registry(&["registry.lan", "build.lan:5000"]);
        for plain in ["127.0.0.1:5000", "127.0.0.1", "[::1]:5000", "[::1]", "registry.lan", "REGISTRY.lan:443", "build.lan:5000"] {
            assert!(r.uses_plain_http(plain), "{plain}");
        }
        for tls in ["localhost:5000", "localhost", "127.0.0.2:5000", "ghcr.io", "build.lan:5001", "build.lan", "registry.lan.evil.com"] {
            assert!(!r.uses_plain_http(tls), "{tls}");
        }
    }

    #[test]
    fn extra_roots_must_hold_certificates() {
        let e = Registry::new(RegistryConfig { extra_roots_pem: vec![b"not a certificate".to_vec()], ..Default::default() }).unwrap_err();
        assert!(e.to_string().contains("holds no PEM certificate"), "{e}");
        let e = Registry::new(RegistryConfig { plain_http_hosts: vec!["http://x".into()], ..Default::default() }).unwrap_err();
        assert!(e.to_string().contains("expected HOST or HOST:PORT"), "{e}");
    }

    #[test]
    fn credentials_never_show_in_debug_output() {
        let basic = Credentials::Basic { username: "ci".into(), password: "hunter2".into() };
        let bearer = Credentials::Bearer("tok-secret".into());
        let text = format!("{basic:?} {bearer:?} {:?}", RegistryConfig { credentials: basic.clone(), ..Default::default() });
        assert!(text.contains("ci") && !text.contains("hunter2") && !text.contains("tok-secret"), "{text}");
    }

    #[test]
    fn the_client_and_its_futures_can_be_shared_across_tasks() {
        fn shared<T: Clone + Send + Sync + 'static>(_: &T) {}
        fn sendable<F: std::future::Future + Send>(_: F) {}
        let r = registry(&[]);
        shared(&r);
        let reference: Reference = "127.0.0.1:1/x:1".parse().unwrap();
        // Built, never polled: only their types are checked.
        sendable(r.push(Path::new("x.wasmzip"), &reference));
        sendable(r.pull(&reference, Path::new("x.wasmzip"), None));
    }

    #[test]
    fn host_and_port_split() {
        assert_eq!(split_host_port("a.b:5000"), ("a.b", Some("5000")));
        assert_eq!(split_host_port("a.b"), ("a.b", None));
        assert_eq!(split_host_port("[::1]:5000"), ("[::1]", Some("5000")));
        assert_eq!(split_host_port("[::1]"), ("[::1]", None));
    }

    #[tokio::test]
    async fn a_refused_connection_is_unavailable_and_names_the_reference() {
        // A port that was just free: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let reference: Reference = format!("127.0.0.1:{port}/team/orders:1.0.0").parse().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.wasmzip");
        let e = registry(&[]).pull(&reference, &dest, None).await.unwrap_err();
        assert!(e.is_unavailable(), "{e:?}");
        assert!(e.to_string().starts_with(&reference.to_string()), "{e}");
        assert!(!dest.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no temporary file is left");
    }

    #[tokio::test]
    async fn push_needs_a_tag_and_a_valid_package() {
        let r = registry(&[]);
        let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let by_digest: Reference = format!("127.0.0.1:1/x@{digest}").parse().unwrap();
        assert!(matches!(r.push(Path::new("x.wasmzip"), &by_digest).await, Err(RegistryError::NeedsTag { .. })));
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.wasmzip");
        std::fs::write(&junk, b"not a zip").unwrap();
        let tagged: Reference = "127.0.0.1:1/x:1".parse().unwrap();
        let e = r.push(&junk, &tagged).await.unwrap_err();
        assert!(matches!(e, RegistryError::Package { .. }) && e.to_string().contains("junk.wasmzip"), "{e}");
    }
}
