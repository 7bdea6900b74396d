//! `network:outbound:*` and `network:inbound:PORT`.
//!
//! Wasmtime's socket address check sees only IP addresses, so host-name grants need two parts: our own
//! `wasi:sockets/ip-name-lookup`, which resolves only names some effective capability covers and records
//! the addresses each name resolved to in the instance's [`NetworkGuard`], and the address check, which
//! accepts a connection to an IP literal granted directly or to an address recorded for a granted name.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use wasmtime::component::{Linker, Resource, ResourceType};
use wasmtime_wasi::p2::bindings::sockets::network::{ErrorCode, IpAddress};
use wasmtime_wasi::p2::{DynPollable, Network as WasiNetwork, Pollable, subscribe};
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmzip_package::Capability;
use wasmzip_package::capability::{HostPattern, PortPattern};

use super::{CapabilityError, CapabilityUnit};
use crate::audit::Auditor;
use crate::engine::EngineKind;
use crate::instance::{InstanceContext, InstanceState};
use crate::plan::{PlanContext, PlanError};

/// The WASI 0.2 interface our name lookup replaces.
const P2_NAME_LOOKUP: &str = "wasi:sockets/ip-name-lookup@0.2.12";
/// The WASI 0.3 interface our name lookup replaces.
const P3_NAME_LOOKUP: &str = "wasi:sockets/ip-name-lookup@0.3.0";

/// Why a name lookup failed, as both WASI versions report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupError {
    /// No effective capability covers the name (audited).
    AccessDenied,
    /// Not a valid name.
    InvalidArgument,
    /// The name does not resolve.
    NameUnresolvable,
}
/// Most addresses one name may resolve to for the guest.
pub const MAX_RESOLVED_ADDRESSES: usize = 64;
/// Most distinct addresses one instance may have recorded from name lookups.
pub const MAX_RECORDED_ADDRESSES: usize = 4096;

/// The effective network capabilities, as typed rules.
#[derive(Debug, Clone, Default)]
pub struct NetworkPolicy {
    outbound: Vec<(HostPattern, PortPattern)>,
    inbound: Vec<PortPattern>,
}

impl NetworkPolicy {
    /// Collects the network capabilities among `effective`.
    pub fn from_capabilities(effective: &[Capability]) -> Self {
        let mut policy = NetworkPolicy::default();
        for cap in effective {
            match cap {
                Capability::NetworkOutbound(h, p) => policy.outbound.push((h.clone(), *p)),
                Capability::NetworkInbound(p) => policy.inbound.push(*p),
                _ => {}
            }
        }
        policy
    }

    /// The outbound rules: (hosts, ports) pairs, from the effective capabilities.
    pub fn outbound(&self) -> &[(HostPattern, PortPattern)] {
        &self.outbound
    }

    /// Whether no network use at all is allowed.
    pub fn is_empty(&self) -> bool {
        self.outbound.is_empty() && self.inbound.is_empty()
    }
}

/// Per-instance network state: the policy plus the addresses granted names resolved to.
#[derive(Debug)]
pub struct NetworkGuard {
    policy: NetworkPolicy,
    resolved: Mutex<HashMap<IpAddr, Vec<PortPattern>>>,
    audit: Auditor,
}

impl NetworkGuard {
    /// A fresh guard for one instance.
    pub fn new(policy: NetworkPolicy, audit: Auditor) -> Arc<Self> {
        Arc::new(NetworkGuard { policy, resolved: Mutex::new(HashMap::new()), audit })
    }

    /// Wasmtime's socket address check: decides, and audits what it denies.
    pub fn check_address(&self, addr: SocketAddr, use_: SocketAddrUse) -> bool {
        let ip = addr.ip().to_canonical();
        let port = addr.port();
        let allowed = match use_ {
            // Port 0 asks the system for an ephemeral port: the implicit bind before a connect, or a UDP
            // socket that will send. That alone reaches nothing: connects, sends and listens are checked.
            SocketAddrUse::TcpBind | SocketAddrUse::UdpBind if port == 0 => true,
            SocketAddrUse::TcpBind | SocketAddrUse::UdpBind | SocketAddrUse::TcpListen => {
                self.policy.inbound.iter().any(|p| p.matches(port))
            }
            SocketAddrUse::TcpAccept => true,
            SocketAddrUse::TcpConnect | SocketAddrUse::UdpSend | SocketAddrUse::UdpReceive => {
                self.outbound_allowed(ip, port)
            }
        };
        if !allowed && !matches!(use_, SocketAddrUse::UdpReceive) {
            let (action, needed) = match use_ {
                SocketAddrUse::TcpBind | SocketAddrUse::UdpBind => ("bind", Capability::NetworkInbound(port_pattern(port))),
                SocketAddrUse::TcpListen => ("listen", Capability::NetworkInbound(port_pattern(port))),
                _ => ("connect", Capability::NetworkOutbound(HostPattern::Ip(ip), port_pattern(port))),
            };
            self.audit.denied_capability(&format!("{action} to {addr}"), &needed);
        }
        allowed
    }

    fn outbound_allowed(&self, ip: IpAddr, port: u16) -> bool {
        let resolved = self.resolved.lock().unwrap_or_else(|e| e.into_inner());
        self.policy.outbound.iter().any(|(host, p)| {
            p.matches(port)
                && match host {
                    HostPattern::Any => true,
                    HostPattern::Ip(granted) => *granted == ip,
                    HostPattern::Name(_) | HostPattern::Subdomains(_) => {
                        resolved.get(&ip).is_some_and(|ports| ports.iter().any(|p| p.matches(port)))
                    }
                }
        })
    }

    /// The ports granted for `name`, or `None` when no effective capability covers the name.
    fn ports_for_name(&self, name: &str) -> Option<Vec<PortPattern>> {
        let ports: Vec<PortPattern> =
            self.policy.outbound.iter().filter(|(h, _)| h.matches_name(name)).map(|(_, p)| *p).collect();
        (!ports.is_empty()).then_some(ports)
    }

    fn record(&self, addrs: &[IpAddr], ports: &[PortPattern]) {
        let mut resolved = self.resolved.lock().unwrap_or_else(|e| e.into_inner());
        for ip in addrs {
            if resolved.len() >= MAX_RECORDED_ADDRESSES && !resolved.contains_key(ip) {
                break;
            }
            let entry = resolved.entry(*ip).or_default();
            for p in ports {
                if !entry.contains(p) {
                    entry.push(*p);
                }
            }
        }
    }

    /// Resolves `name` for the guest: IP literals pass through (the address check decides), names must
    /// be covered by an effective capability.
    pub async fn resolve(&self, name: &str) -> Result<Vec<IpAddr>, LookupError> {
        let bare = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')).unwrap_or(name);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(vec![ip.to_canonical()]);
        }
        let lower = name.trim_end_matches('.').to_ascii_lowercase();
        if lower.is_empty() || lower.len() > 253 || !lower.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.') {
            return Err(LookupError::InvalidArgument);
        }
        let Some(ports) = self.ports_for_name(&lower) else {
            self.audit.denied(&format!("name lookup of {lower}"), &format!("network:outbound:{lower}:*"));
            return Err(LookupError::AccessDenied);
        };
        let addrs: Vec<IpAddr> = tokio::net::lookup_host((lower.as_str(), 0))
            .await
            .map_err(|_| LookupError::NameUnresolvable)?
            .map(|a| a.ip().to_canonical())
            .take(MAX_RESOLVED_ADDRESSES)
            .collect();
        self.record(&addrs, &ports);
        Ok(addrs)
    }
}

fn port_pattern(port: u16) -> PortPattern {
    if port == 0 { PortPattern::Any } else { PortPattern::Port(port) }
}

/// The guest's WASI 0.2 `resolve-address-stream`: addresses already resolved and filtered.
pub struct ResolveAddressStream(VecDeque<IpAddr>);

#[wasmtime_wasi::async_trait]
impl Pollable for ResolveAddressStream {
    async fn ready(&mut self) {}
}

/// The network unit: one guard per instance, consulted by Wasmtime's socket address check and by
/// our name lookup (for WASI 0.2 and 0.3 alike).
pub struct Network;

impl CapabilityUnit for Network {
    type Planned = NetworkPolicy;
    type Instance = Arc<NetworkGuard>;

    fn link(linker: &mut Linker<InstanceState>, kind: EngineKind) -> wasmtime::Result<()> {
        add_p2_name_lookup(linker)?;
        if kind == EngineKind::Concurrent {
            add_p3_name_lookup(linker)?;
        }
        Ok(())
    }

    fn plan(cx: &mut PlanContext<'_>) -> Result<NetworkPolicy, PlanError> {
        Ok(NetworkPolicy::from_capabilities(cx.effective))
    }

    fn instantiate(policy: &NetworkPolicy, cx: &mut InstanceContext<'_>) -> Result<Arc<NetworkGuard>, CapabilityError> {
        let guard = NetworkGuard::new(policy.clone(), cx.audit.clone());
        // Sockets stay available so that every attempt reaches the address check, which decides and
        // audits; name lookup is ours.
        cx.wasi.allow_tcp(true).allow_udp(true).allow_ip_name_lookup(true);
        let check = guard.clone();
        cx.wasi.socket_addr_check(move |addr, use_| {
            let allowed = check.check_address(addr, use_);
            Box::pin(async move { allowed })
        });
        Ok(guard)
    }
}

/// Replaces Wasmtime's `wasi:sockets/ip-name-lookup@0.2` with the grant-filtered lookup.
fn add_p2_name_lookup(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut instance = linker.instance(P2_NAME_LOOKUP)?;
    instance.resource("resolve-address-stream", ResourceType::host::<ResolveAddressStream>(), |mut store, rep| {
        store.data_mut().table().delete(Resource::<ResolveAddressStream>::new_own(rep))?;
        Ok(())
    })?;
    instance.func_wrap_async("resolve-addresses", |mut store, (network, name): (Resource<WasiNetwork>, String)| {
        Box::new(async move {
            store.data_mut().table().get(&network)?;
            let guard = store.data().capabilities().network.clone();
            let result = match guard.resolve(&name).await {
                Ok(addrs) => Ok(store.data_mut().table().push(ResolveAddressStream(addrs.into()))?),
                Err(code) => Err(p2_code(code)),
            };
            Ok((result,))
        })
    })?;
    instance.func_wrap(
        "[method]resolve-address-stream.resolve-next-address",
        |mut store, (stream,): (Resource<ResolveAddressStream>,)| {
            let stream = store.data_mut().table().get_mut(&stream)?;
            Ok((Ok::<Option<IpAddress>, ErrorCode>(stream.0.pop_front().map(IpAddress::from)),))
        },
    )?;
    instance.func_wrap(
        "[method]resolve-address-stream.subscribe",
        |mut store, (stream,): (Resource<ResolveAddressStream>,)| -> wasmtime::Result<(Resource<DynPollable>,)> {
            Ok((subscribe(store.data_mut().table(), stream)?,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// Replaces Wasmtime's `wasi:sockets/ip-name-lookup@0.3` with the grant-filtered lookup.
fn add_p3_name_lookup(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
    use wasmtime_wasi::p3::bindings::sockets::ip_name_lookup::ErrorCode as P3Code;
    use wasmtime_wasi::p3::bindings::sockets::types::IpAddress as P3Address;
    linker.allow_shadowing(true);
    let mut instance = linker.instance(P3_NAME_LOOKUP)?;
    instance.func_wrap_concurrent("resolve-addresses", |accessor, (name,): (String,)| {
        Box::pin(async move {
            let guard = accessor.with(|mut access| access.get().capabilities().network.clone());
            let result = match guard.resolve(&name).await {
                Ok(addrs) => Ok(addrs.into_iter().map(P3Address::from).collect::<Vec<_>>()),
                Err(LookupError::AccessDenied) => Err(P3Code::AccessDenied),
                Err(LookupError::InvalidArgument) => Err(P3Code::InvalidArgument),
                Err(LookupError::NameUnresolvable) => Err(P3Code::NameUnresolvable),
            };
            Ok((result,))
        })
    })?;
    linker.allow_shadowing(false);
    Ok(())
}

fn p2_code(error: LookupError) -> ErrorCode {
    match error {
        LookupError::AccessDenied => ErrorCode::AccessDenied,
        LookupError::InvalidArgument => ErrorCode::InvalidArgument,
        LookupError::NameUnresolvable => ErrorCode::NameUnresolvable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(tokens: &[&str]) -> Arc<NetworkGuard> {
        let caps: Vec<Capability> = tokens.iter().map(|t| t.parse().unwrap()).collect();
        NetworkGuard::new(NetworkPolicy::from_capabilities(&caps), Auditor::new("test"))
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ip_and_port_rules() {
        let g = guard(&["network:outbound:10.1.2.3:80", "network:outbound:443", "network:inbound:8080"]);
        assert!(g.check_address(addr("10.1.2.3:80"), SocketAddrUse::TcpConnect));
        assert!(!g.check_address(addr("10.1.2.3:81"), SocketAddrUse::TcpConnect));
        assert!(g.check_address(addr("1.1.1.1:443"), SocketAddrUse::TcpConnect));
        assert!(g.check_address(addr("[::ffff:10.1.2.3]:80"), SocketAddrUse::TcpConnect), "mapped IPv4 is canonicalised");
        assert!(g.check_address(addr("0.0.0.0:0"), SocketAddrUse::TcpBind), "implicit bind before connect");
        assert!(g.check_address(addr("0.0.0.0:8080"), SocketAddrUse::TcpBind));
        assert!(g.check_address(addr("0.0.0.0:8080"), SocketAddrUse::TcpListen));
        assert!(!g.check_address(addr("0.0.0.0:9090"), SocketAddrUse::TcpListen));
        assert!(!g.check_address(addr("0.0.0.0:0"), SocketAddrUse::TcpListen), "an ephemeral listener needs inbound:*");
    }

    #[test]
    fn nothing_granted_denies_everything() {
        let g = guard(&[]);
        assert!(!g.check_address(addr("127.0.0.1:80"), SocketAddrUse::TcpConnect));
        assert!(!g.check_address(addr("0.0.0.0:80"), SocketAddrUse::TcpBind));
        assert!(!g.check_address(addr("0.0.0.0:0"), SocketAddrUse::TcpListen));
    }

    #[tokio::test]
    async fn names_must_be_granted_and_their_addresses_are_recorded() {
        let g = guard(&["network:outbound:localhost:7000", "network:outbound:*.example.com:443"]);
        assert_eq!(g.resolve("nothere.invalid").await, Err(LookupError::AccessDenied));
        assert_eq!(g.resolve("example.com").await, Err(LookupError::AccessDenied), "*.example.com excludes the apex");
        assert!(!g.check_address(addr("127.0.0.1:7000"), SocketAddrUse::TcpConnect), "not yet resolved");
        let addrs = g.resolve("LOCALHOST").await.unwrap();
        assert!(addrs.contains(&"127.0.0.1".parse().unwrap()), "{addrs:?}");
        assert!(g.check_address(addr("127.0.0.1:7000"), SocketAddrUse::TcpConnect));
        assert!(!g.check_address(addr("127.0.0.1:7001"), SocketAddrUse::TcpConnect), "only the granted port");
        assert_eq!(g.resolve("10.0.0.1").await.unwrap(), vec!["10.0.0.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(g.resolve("bad name!").await, Err(LookupError::InvalidArgument));
    }
}
