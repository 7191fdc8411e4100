//! The rustls client configuration, and turning TLS and transport errors into sentences.

use std::error::Error as StdError;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::{CertificateError, ClientConfig, RootCertStore};
use sec_tracker_proto::config::ServerConfig;

use super::SenderError;

/// The trust and identity files of one TLS client, and the config section they come from (for
/// messages: `server.ca_file`, `outputs.syslog.client_key`).
pub struct TlsFiles<'a> {
    pub section: &'a str,
    pub ca_file: Option<&'a Path>,
    pub client_cert: Option<&'a Path>,
    pub client_key: Option<&'a Path>,
}

impl<'a> TlsFiles<'a> {
    pub fn of_server(server: &'a ServerConfig) -> Self {
        TlsFiles {
            section: "server",
            ca_file: server.ca_file.as_deref(),
            client_cert: server.client_cert.as_deref(),
            client_key: server.client_key.as_deref(),
        }
    }

    fn key(&self, name: &str) -> String {
        format!("{}.{name}", self.section)
    }
}

/// TLS 1.3 and 1.2 with the ring provider; system roots plus `server.ca_file`; optional client
/// certificate. Certificates and host names are always verified.
pub(crate) fn client_config(server: &ServerConfig) -> Result<Arc<ClientConfig>, SenderError> {
    client_config_for(&TlsFiles::of_server(server), &[b"h2", b"http/1.1"])
}

/// The same for any section's files, offering `alpn` (none for syslog).
pub fn client_config_for(
    files: &TlsFiles<'_>,
    alpn: &[&[u8]],
) -> Result<Arc<ClientConfig>, SenderError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (system, _unparsable) = roots.add_parsable_certificates(native.certs);
    if let Some(path) = files.ca_file {
        let certs = read_certs(files.key("ca_file"), path)?;
        for (i, cert) in certs.into_iter().enumerate() {
            roots.add(cert).map_err(|e| SenderError::File {
                key: files.key("ca_file"),
                path: path.to_owned(),
                problem: format!("certificate #{} is not a usable CA certificate: {e}", i + 1),
            })?;
        }
    }
    if roots.is_empty() {
        tracing::warn!(
            errors = ?native.errors,
            section = files.section,
            "no trusted CA certificates: the system store is empty and ca_file is not set; \
             every server certificate will be refused"
        );
    } else {
        tracing::debug!(
            system,
            total = roots.len(),
            "trusted CA certificates loaded"
        );
    }
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| SenderError::Tls(e.to_string()))?
        .with_root_certificates(roots);
    let mut config = match (files.client_cert, files.client_key) {
        (Some(cert_path), Some(key_path)) => {
            let chain = read_certs(files.key("client_cert"), cert_path)?;
            let key = read_key(files.key("client_key"), key_path)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| SenderError::File {
                    key: files.key("client_key"),
                    path: key_path.to_owned(),
                    problem: format!(
                        "cannot be used with {} {}: {e}",
                        files.key("client_cert"),
                        cert_path.display()
                    ),
                })?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(SenderError::Tls(format!(
                "{} and {} go together: set both or neither",
                files.key("client_cert"),
                files.key("client_key")
            )))
        }
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

fn read_pem_file(key: String, path: &Path) -> Result<Vec<u8>, SenderError> {
    std::fs::read(path).map_err(|e| SenderError::File {
        key,
        path: path.to_owned(),
        problem: format!("cannot read: {e}"),
    })
}

fn read_certs(key: String, path: &Path) -> Result<Vec<CertificateDer<'static>>, SenderError> {
    let pem = read_pem_file(key.clone(), path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| SenderError::File {
            key: key.clone(),
            path: path.to_owned(),
            problem: format!("is not a valid PEM file: {e}"),
        })?;
    if certs.is_empty() {
        return Err(SenderError::File {
            key,
            path: path.to_owned(),
            problem: "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
        });
    }
    Ok(certs)
}

fn read_key(key: String, path: &Path) -> Result<PrivateKeyDer<'static>, SenderError> {
    let pem = read_pem_file(key.clone(), path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| SenderError::File {
        key,
        path: path.to_owned(),
        problem: match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                "holds no PEM private key (PKCS#8, PKCS#1 or SEC1)".into()
            }
            e => format!("is not a valid PEM private key: {e}"),
        },
    })
}

/// Every error in a chain, looking inside `io::Error`s too (whose `source()` skips the error
/// they wrap, which is where rustls puts its own).
pub(crate) fn chain<'a>(e: &'a (dyn StdError + 'static)) -> Vec<&'a (dyn StdError + 'static)> {
    let mut out = Vec::new();
    let mut next = Some(e);
    while let Some(cur) = next {
        out.push(cur);
        if let Some(inner) = cur.downcast_ref::<io::Error>().and_then(|io| io.get_ref()) {
            let inner: &(dyn StdError + 'static) = inner;
            out.extend(chain(inner));
        }
        next = cur.source();
    }
    out
}

pub(crate) fn find<'a, T: StdError + 'static>(e: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    chain(e).into_iter().find_map(|e| e.downcast_ref::<T>())
}

pub(crate) fn io_kind(e: &(dyn StdError + 'static)) -> Option<io::ErrorKind> {
    chain(e)
        .into_iter()
        .find_map(|e| e.downcast_ref::<io::Error>().map(io::Error::kind))
}

/// The chain as one line, each message once.
pub(crate) fn chain_text(e: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    for e in chain(e) {
        let s = e.to_string();
        if !s.is_empty() && !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}

/// A reqwest error's causes as one line, without reqwest's own "error sending request for url
/// (…)" and hyper's "client error (…)" wrappers.
pub(crate) fn detail_text(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = e.source();
    while let Some(cur) = next {
        let s = cur.to_string();
        if !s.is_empty()
            && !s.starts_with("client error (")
            && !parts.iter().any(|p| p.contains(&s))
        {
            parts.push(s);
        }
        next = cur.source();
    }
    if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    }
}

fn date(t: UnixTime) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(t.as_secs())).to_string()
}

/// `DnsName("a.example")` / `IpAddress(127.0.0.1)` (how webpki lists names) → `a.example`.
fn bare_name(s: &str) -> &str {
    for prefix in ["DnsName(", "IpAddress(", "UniformResourceIdentifier("] {
        if let Some(rest) = s.strip_prefix(prefix).and_then(|r| r.strip_suffix(')')) {
            return rest.trim_matches('"');
        }
    }
    s
}

/// A rustls error as a sentence about `host`. `ca_file`: the configured extra CA file, if any.
pub(crate) fn describe(err: &rustls::Error, host: &str, ca_file: Option<&Path>) -> String {
    use rustls::Error as E;
    match err {
        E::InvalidCertificate(cert) => describe_cert(cert, host, ca_file),
        E::AlertReceived(alert) => {
            let hint = match alert {
                rustls::AlertDescription::CertificateRequired => {
                    "; it requires a client certificate (server.client_cert / server.client_key)"
                }
                rustls::AlertDescription::UnknownCA
                | rustls::AlertDescription::BadCertificate
                | rustls::AlertDescription::CertificateUnknown
                | rustls::AlertDescription::CertificateExpired => {
                    "; it did not accept this agent's client certificate"
                }
                rustls::AlertDescription::HandshakeFailure
                | rustls::AlertDescription::ProtocolVersion => {
                    "; no TLS version or cipher suite in common (this agent speaks TLS 1.2 and 1.3), \
                     or it requires a client certificate"
                }
                _ => "",
            };
            format!("the server {host} refused the TLS handshake (alert: {alert:?}){hint}")
        }
        E::InvalidMessage(_) | E::InappropriateMessage { .. } => format!(
            "{host} did not answer in TLS ({err}); is it a plain http server, or the wrong port?"
        ),
        E::PeerIncompatible(p) => format!(
            "{host} has no TLS version or cipher suite in common with this agent (TLS 1.2 and \
             1.3 only): {p:?}"
        ),
        E::NoCertificatesPresented => format!("{host} presented no certificate"),
        other => format!("TLS handshake with {host} failed: {other}"),
    }
}

fn describe_cert(err: &CertificateError, host: &str, ca_file: Option<&Path>) -> String {
    use CertificateError as C;
    match err {
        C::UnknownIssuer => {
            let trusted = match ca_file {
                Some(p) => format!("the system roots or server.ca_file {}", p.display()),
                None => "the system roots; set server.ca_file to the CA that issued it".into(),
            };
            format!(
                "the certificate of {host} is signed by an unknown certificate authority (not \
                 among {trusted})"
            )
        }
        C::Expired => format!("the certificate of {host} has expired"),
        C::ExpiredContext { time, not_after } => format!(
            "the certificate of {host} expired on {} (now {})",
            date(*not_after),
            date(*time)
        ),
        C::NotValidYet => format!("the certificate of {host} is not valid yet (check the clock)"),
        C::NotValidYetContext { time, not_before } => format!(
            "the certificate of {host} is not valid before {} (now {}; check the clock)",
            date(*not_before),
            date(*time)
        ),
        C::NotValidForName => format!("the certificate presented is not valid for host {host}"),
        C::NotValidForNameContext { presented, .. } => {
            let names: Vec<&str> = presented.iter().map(|s| bare_name(s)).collect();
            if names.is_empty() {
                format!("the certificate presented names no host; it is not valid for host {host}")
            } else {
                format!(
                    "the certificate presented is for {}, not valid for host {host} (host name \
                     mismatch)",
                    names.join(", ")
                )
            }
        }
        C::Revoked => format!("the certificate of {host} has been revoked"),
        C::BadSignature => format!("the certificate of {host} has a bad signature"),
        other => format!("the certificate of {host} was refused: {other}"),
    }
}
