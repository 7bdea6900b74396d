//! Outbound `wasi:http` requests (WASI 0.2 `outgoing-handler` and 0.3 `client` alike): checked
//! against the component's `network:outbound` capabilities in Wasmtime's send-request hook, counted
//! against the per-instance limit, tagged with the instance's trace context, and sent through a
//! pooled client that the component's instances share.
//!
//! Private, loopback and link-local destinations are refused unless a grant names them explicitly: an
//! IP grant for that address, or a host-name grant for exactly that name. Wildcard grants (`*`,
//! `*.domain`) never reach them. The guest follows redirects itself, so each hop is checked again.
//!
//! The check resolves a host name and pins the addresses it approved; the client's resolver connects
//! only to pinned addresses, so a DNS answer that changes between check and connect (rebinding) is
//! never used. Each function version has its own client, so pooled connections never cross from one
//! function's grants to another's.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioExecutor;
use wasmtime::component::Linker;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};
use wasmzip_package::capability::{HostPattern, PortPattern};

use super::network::NetworkPolicy;
use super::{CapabilityError, CapabilityUnit};
use crate::audit::Auditor;
use crate::engine::EngineKind;
use crate::instance::{InstanceContext, InstanceState};
use crate::plan::{PlanContext, PlanError};
use crate::requests::RequestScopes;

/// The outbound HTTP unit: one rule set and pooled client per component, one hook per instance.
pub struct OutboundHttp;

/// One instance's `wasi:http` state.
pub struct HttpInstance {
    ctx: WasiHttpCtx,
    hooks: OutboundHooks,
}

impl HttpInstance {
    /// The outbound requests this instance has made.
    pub fn sent(&self) -> u32 {
        self.hooks.limit - self.hooks.remaining
    }
}

impl CapabilityUnit for OutboundHttp {
    type Planned = Arc<OutboundRules>;
    type Instance = HttpInstance;

    fn link(linker: &mut Linker<InstanceState>, kind: EngineKind) -> wasmtime::Result<()> {
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
        if kind == EngineKind::Concurrent {
            wasmtime_wasi_http::p3::add_to_linker(linker)?;
        }
        Ok(())
    }

    fn plan(cx: &mut PlanContext<'_>) -> Result<Self::Planned, PlanError> {
        Ok(Arc::new(OutboundRules::new(NetworkPolicy::from_capabilities(cx.effective).outbound().to_vec())))
    }

    fn instantiate(rules: &Self::Planned, cx: &mut InstanceContext<'_>) -> Result<HttpInstance, CapabilityError> {
        let scope = cx.scope;
        let hooks = OutboundHooks {
            rules: rules.clone(),
            audit: cx.audit.clone(),
            trace_id: scope.trace_id.clone(),
            remaining: scope.outbound_limit,
            limit: scope.outbound_limit,
            denials: scope.denials.clone(),
            requests: scope.requests.clone(),
        };
        Ok(HttpInstance { ctx: WasiHttpCtx::new(), hooks })
    }
}

impl WasiHttpView for InstanceState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        let (capabilities, table) = self.capabilities_and_table();
        let http = &mut capabilities.http;
        WasiHttpCtxView { ctx: &mut http.ctx, table, hooks: &mut http.hooks }
    }
}

/// Outbound requests one instance may make when neither manifest nor operator sets a limit.
pub const DEFAULT_OUTBOUND_REQUESTS: u32 = 16;

/// How long an outbound request may wait for a connection and its response headers by default.
pub const DEFAULT_OUTBOUND_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a name's approved addresses stay pinned after a check.
pub const PIN_TTL: Duration = Duration::from_secs(60);
/// Most names pinned per function at once.
pub const MAX_PINS: usize = 1024;

type Pins = Arc<Mutex<HashMap<String, (Vec<IpAddr>, Instant)>>>;
type Connector = hyper_rustls::HttpsConnector<HttpConnector<PinnedResolver>>;

/// Resolves only to addresses a check approved (pinned); an unpinned name resolves to its public
/// addresses only.
#[derive(Clone, Default)]
pub struct PinnedResolver {
    pins: Pins,
}

impl tower_service::Service<Name> for PinnedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, std::io::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), std::io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let host = name.as_str().trim_end_matches('.').to_ascii_lowercase();
        let pinned = {
            let pins = self.pins.lock().unwrap_or_else(|e| e.into_inner());
            pins.get(&host).filter(|(_, at)| at.elapsed() < PIN_TTL).map(|(ips, _)| ips.clone())
        };
        Box::pin(async move {
            let ips: Vec<IpAddr> = match pinned {
                Some(ips) => ips,
                None => tokio::net::lookup_host((host.as_str(), 0)).await?.map(|a| a.ip()).filter(|ip| !is_private(*ip)).collect(),
            };
            if ips.is_empty() {
                return Err(std::io::Error::other(format!("{host} resolves to no approved address")));
            }
            Ok(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)).collect::<Vec<_>>().into_iter())
        })
    }
}

/// A pooled HTTP(S) client for one function version's requests.
#[derive(Clone)]
pub struct OutboundClient {
    client: Client<Connector, WasiBody>,
}

impl OutboundClient {
    /// A client with connection pooling, HTTP/1.1, TLS through rustls with the webpki roots, resolving
    /// through `resolver`.
    pub fn new(resolver: PinnedResolver) -> Self {
        let mut http = HttpConnector::new_with_resolver(resolver);
        http.enforce_http(false);
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls_provider())
            .expect("the ring provider supports the default protocol versions")
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build(https);
        OutboundClient { client }
    }
}

fn rustls_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Addresses a wildcard grant must never reach.
pub fn is_private(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// The outbound rules of one component, the addresses its checks approved, and its client.
#[derive(Clone)]
pub struct OutboundRules {
    rules: Vec<(HostPattern, PortPattern)>,
    resolver: PinnedResolver,
    client: OutboundClient,
}

/// Why an outbound request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No rule covers the host and port.
    NotGranted,
    /// The destination is private, loopback or link-local and no grant names it explicitly.
    PrivateAddress(IpAddr),
    /// The name does not resolve.
    Unresolvable,
}

impl OutboundRules {
    /// Rules from the effective `network:outbound` capabilities, with a client of their own.
    pub fn new(rules: Vec<(HostPattern, PortPattern)>) -> Self {
        let resolver = PinnedResolver::default();
        OutboundRules { rules, client: OutboundClient::new(resolver.clone()), resolver }
    }

    /// The client requests under these rules use.
    pub fn client(&self) -> &OutboundClient {
        &self.client
    }

    fn pin(&self, host: &str, ips: Vec<IpAddr>) {
        let mut pins = self.resolver.pins.lock().unwrap_or_else(|e| e.into_inner());
        if pins.len() >= MAX_PINS {
            pins.retain(|_, (_, at)| at.elapsed() < PIN_TTL);
        }
        if pins.len() < MAX_PINS || pins.contains_key(host) {
            pins.insert(host.to_string(), (ips, Instant::now()));
        }
    }

    /// Decides whether `host:port` may be reached, resolving names to check where they point.
    pub async fn check(&self, host: &str, port: u16) -> Result<(), Refusal> {
        let host = host.trim_start_matches('[').trim_end_matches(']').trim_end_matches('.').to_ascii_lowercase();
        if let Ok(ip) = host.parse::<IpAddr>() {
            let ip = ip.to_canonical();
            let explicit = self.rules.iter().any(|(h, p)| p.matches(port) && *h == HostPattern::Ip(ip));
            let any = self.rules.iter().any(|(h, p)| p.matches(port) && *h == HostPattern::Any);
            return match (explicit, any) {
                (true, _) => Ok(()),
                (false, true) if !is_private(ip) => Ok(()),
                (false, true) => Err(Refusal::PrivateAddress(ip)),
                (false, false) => Err(Refusal::NotGranted),
            };
        }
        let matching: Vec<&HostPattern> =
            self.rules.iter().filter(|(h, p)| p.matches(port) && h.matches_name(&host)).map(|(h, _)| h).collect();
        if matching.is_empty() {
            return Err(Refusal::NotGranted);
        }
        let named = matching.iter().any(|h| matches!(h, HostPattern::Name(n) if *n == host));
        let addrs: Vec<IpAddr> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|_| Refusal::Unresolvable)?
            .map(|a| a.ip().to_canonical())
            .collect();
        if let Some(private) = addrs.iter().copied().find(|ip| is_private(*ip))
            && !named
        {
            return Err(Refusal::PrivateAddress(private));
        }
        if addrs.is_empty() {
            return Err(Refusal::Unresolvable);
        }
        self.pin(&host, addrs);
        Ok(())
    }
}

/// Counts a denial in the metrics; called with the kind of denial.
pub type DenialCounter = Arc<dyn Fn(&'static str) + Send + Sync>;

/// The hooks of one instance's store.
struct OutboundHooks {
    /// The function's rules and client.
    pub rules: Arc<OutboundRules>,
    /// Where denials are audited.
    pub audit: Auditor,
    /// The trace id of the incoming request (the request id).
    pub trace_id: Arc<str>,
    /// Outbound requests this request may still make.
    pub remaining: u32,
    /// The limit, for messages.
    pub limit: u32,
    /// Counts denials.
    pub denials: DenialCounter,
    /// The requests of a shared instance: the running one's trace id and budget apply.
    pub requests: Option<Arc<RequestScopes>>,
}

fn span_id() -> String {
    let mut id = [0u8; 8];
    getrandom::fill(&mut id).unwrap_or_else(|_| id = [1; 8]);
    hex::encode(id)
}

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = Result<(http::Response<WasiBody>, Box<dyn Future<Output = Result<(), HttpError>> + Send>), HttpError>> + Send>
    {
        let uri = request.uri().clone();
        // `Uri::host` keeps an IPv6 address's brackets; the checks and messages add their own.
        let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_string();
        let port = uri.port_u16().unwrap_or(if uri.scheme() == Some(&http::uri::Scheme::HTTPS) { 443 } else { 80 });
        let (over_limit, limit, trace_id) = match self.requests.as_ref().and_then(|r| r.current()) {
            Some(request) => (!request.take_outbound(), request.outbound_limit(), request.trace_id.clone()),
            None => {
                let over_limit = self.remaining == 0;
                self.remaining = self.remaining.saturating_sub(1);
                (over_limit, self.limit, self.trace_id.clone())
            }
        };
        let rules = self.rules.clone();
        let audit = self.audit.pinned();
        let denials = self.denials.clone();
        let traceparent = format!("00-{trace_id}-{}-01", span_id());
        Box::new(async move {
            let shown = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
            if over_limit {
                audit.denied(&format!("outbound HTTP request to {shown}: over the limit of {limit} per request"), "a higher outbound_requests limit");
                denials("outbound-limit");
                return Err(HttpError::HttpRequestDenied);
            }
            if let Err(refusal) = rules.check(&host, port).await {
                let needed = if host.contains(':') { format!("network:outbound:[{host}]:{port}") } else { format!("network:outbound:{host}:{port}") };
                let action = match refusal {
                    Refusal::NotGranted => format!("outbound HTTP request to {shown}"),
                    Refusal::PrivateAddress(ip) => format!("outbound HTTP request to {shown} (private address {ip}; only a grant naming it explicitly allows it)"),
                    Refusal::Unresolvable => return Err(HttpError::DnsError { rcode: Some("NXDOMAIN".into()), info_code: None }),
                };
                audit.denied(&action, &needed);
                denials("outbound-http");
                return Err(HttpError::HttpRequestDenied);
            }
            if let Ok(value) = http::HeaderValue::from_str(&traceparent) {
                request.headers_mut().insert("traceparent", value);
            }
            let wait = options.and_then(|o| o.first_byte_timeout).unwrap_or(DEFAULT_OUTBOUND_TIMEOUT);
            let response = match tokio::time::timeout(wait, rules.client().client.request(request)).await {
                Err(_) => return Err(HttpError::ConnectionReadTimeout),
                Ok(Err(e)) if e.is_connect() => return Err(HttpError::ConnectionRefused),
                Ok(Err(e)) => return Err(HttpError::Connect(std::io::Error::other(e.to_string()))),
                Ok(Ok(response)) => response,
            };
            let response = response.map(|body| body.map_err(HttpError::Hyper).boxed_unsync());
            let io: Box<dyn Future<Output = Result<(), HttpError>> + Send> = Box::new(async { Ok(()) });
            Ok((response, io))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(tokens: &[&str]) -> OutboundRules {
        let caps: Vec<wasmzip_package::Capability> = tokens.iter().map(|t| t.parse().unwrap()).collect();
        OutboundRules::new(NetworkPolicy::from_capabilities(&caps).outbound().to_vec())
    }

    #[tokio::test]
    async fn private_addresses_need_explicit_grants() {
        let any = rules(&["network:outbound:*"]);
        assert_eq!(any.check("127.0.0.1", 80).await, Err(Refusal::PrivateAddress("127.0.0.1".parse().unwrap())));
        assert_eq!(any.check("10.1.2.3", 80).await, Err(Refusal::PrivateAddress("10.1.2.3".parse().unwrap())));
        assert_eq!(any.check("localhost", 80).await.unwrap_err(), Refusal::PrivateAddress("127.0.0.1".parse().unwrap()));
        assert!(any.check("93.184.216.34", 80).await.is_ok());
        let explicit = rules(&["network:outbound:127.0.0.1:8080", "network:outbound:localhost:9090"]);
        assert!(explicit.check("127.0.0.1", 8080).await.is_ok());
        assert_eq!(explicit.check("127.0.0.1", 8081).await, Err(Refusal::NotGranted));
        assert!(explicit.check("localhost", 9090).await.is_ok());
        assert!(explicit.check("[::1]", 9090).await.is_err());
        let pinned = explicit.resolver.pins.lock().unwrap().get("localhost").map(|(ips, _)| ips.clone()).unwrap();
        assert!(pinned.contains(&"127.0.0.1".parse().unwrap()), "approved addresses are pinned: {pinned:?}");
        let wildcard = rules(&["network:outbound:*.localhost:80"]);
        assert!(matches!(wildcard.check("a.localhost", 80).await, Err(Refusal::PrivateAddress(_)) | Err(Refusal::Unresolvable)));
    }

    #[test]
    fn classifies_addresses() {
        for ip in ["127.0.0.1", "10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.1.1", "100.64.0.1", "::1", "fe80::1", "fd00::1", "::ffff:127.0.0.1", "0.0.0.0"] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2001:4860::8888"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }
}
