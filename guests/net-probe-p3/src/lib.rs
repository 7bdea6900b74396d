//! `net-probe-p3` — the WASI 0.3 twin of `net-probe`: each argument is one probe through
//! `wasi:sockets@0.3`, each printing exactly one line; the exit status is always 0.
//!
//! | argument            | operation                                                          |
//! |---------------------|--------------------------------------------------------------------|
//! | `resolve:NAME`      | `ip-name-lookup.resolve-addresses`                                 |
//! | `connect:ADDR:PORT` | resolve ADDR, `tcp-socket.connect` (5 s timeout) to each address until one |
//! |                     | succeeds, `send` a stream holding `ping\n`, `receive` one chunk (≤ 64 bytes, 5 s) |
//! | `listen:PORT`       | `tcp-socket.bind` to `0.0.0.0:PORT`, then `listen`                  |
//! | `http:URL`          | `wasi:http/client@0.3.send` of a GET for `http://HOST:PORT/PATH`, body read to the end |
//!
//! ADDR may be a host name, an IPv4 address or a bracketed IPv6 address. Output lines:
//!
//! ```text
//! resolve NAME ok <ip1,ip2,...>          IPs sorted and comma-joined
//! resolve NAME error <error-code:?>
//! connect ADDR:PORT ok <reply>           reply = bytes received, lossy UTF-8, trimmed
//! connect ADDR:PORT error <error-code:?>
//! listen PORT ok
//! listen PORT error <error-code:?>
//! http URL ok <status> <body>           body lossy UTF-8, trimmed
//! http URL error <error-code:?>
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::FutureExt as _;
use wasip3::cli::{environment, stdout};
use wasip3::clocks::monotonic_clock;
use wasip3::sockets::ip_name_lookup;
use wasip3::sockets::types::{
    IpAddress, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress, TcpSocket,
};
use wasip3::wit_stream;

wasip3::cli::command::export!(NetProbe);

struct NetProbe;

const TIMEOUT_NS: u64 = 5_000_000_000;

fn to_std(ip: IpAddress) -> IpAddr {
    match ip {
        IpAddress::Ipv4((a, b, c, d)) => IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
        IpAddress::Ipv6((a, b, c, d, e, f, g, h)) => IpAddr::V6(Ipv6Addr::new(a, b, c, d, e, f, g, h)),
    }
}

fn socket_address(ip: IpAddr, port: u16) -> IpSocketAddress {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            IpSocketAddress::Ipv4(Ipv4SocketAddress { port, address: (a, b, c, d) })
        }
        IpAddr::V6(v6) => {
            let [a, b, c, d, e, f, g, h] = v6.segments();
            IpSocketAddress::Ipv6(Ipv6SocketAddress { port, flow_info: 0, address: (a, b, c, d, e, f, g, h), scope_id: 0 })
        }
    }
}

/// Waits for `f`, or gives up after the probe timeout.
async fn within<T>(f: impl Future<Output = T>) -> Option<T> {
    let mut f = std::pin::pin!(f.fuse());
    let mut timeout = std::pin::pin!(monotonic_clock::wait_for(TIMEOUT_NS).fuse());
    futures::select_biased! {
        v = f => Some(v),
        () = timeout => None,
    }
}

async fn resolve_name(name: &str) -> Result<Vec<IpAddr>, String> {
    let bare = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')).unwrap_or(name);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    ip_name_lookup::resolve_addresses(bare.to_string())
        .await
        .map(|ips| ips.into_iter().map(to_std).collect())
        .map_err(|e| format!("{e:?}"))
}

async fn resolve(name: &str) -> String {
    match resolve_name(name).await {
        Ok(mut ips) => {
            ips.sort();
            ips.dedup();
            let ips: Vec<String> = ips.iter().map(IpAddr::to_string).collect();
            format!("resolve {name} ok {}", ips.join(","))
        }
        Err(e) => format!("resolve {name} error {e}"),
    }
}

async fn exchange(socket: &TcpSocket) -> Result<String, String> {
    let (mut tx, rx) = wit_stream::new();
    let sent = socket.send(rx);
    let rest = tx.write_all(b"ping\n".to_vec()).await;
    if !rest.is_empty() {
        return Err("the host took only part of the request".into());
    }
    drop(tx);
    let (mut data, _result) = socket.receive();
    let (_, reply) = within(data.read(Vec::with_capacity(64))).await.ok_or("Timeout")?;
    drop(data);
    drop(sent);
    Ok(String::from_utf8_lossy(&reply).trim().to_string())
}

async fn connect(target: &str) -> String {
    let prefix = format!("connect {target}");
    let Some((host, port)) = target.rsplit_once(':') else {
        return format!("{prefix} error InvalidArgument");
    };
    let Ok(port) = port.parse::<u16>() else {
        return format!("{prefix} error InvalidArgument");
    };
    let ips = match resolve_name(host).await {
        Ok(ips) => ips,
        Err(e) => return format!("{prefix} error {e}"),
    };
    let mut last = "NameUnresolvable".to_string();
    for ip in ips {
        let family = if ip.is_ipv4() { IpAddressFamily::Ipv4 } else { IpAddressFamily::Ipv6 };
        let socket = match TcpSocket::create(family) {
            Ok(s) => s,
            Err(e) => return format!("{prefix} error {e:?}"),
        };
        match within(socket.connect(socket_address(ip, port))).await {
            Some(Ok(())) => {
                return match exchange(&socket).await {
                    Ok(reply) => format!("{prefix} ok {reply}"),
                    Err(e) => format!("{prefix} error {e}"),
                };
            }
            Some(Err(e)) => last = format!("{e:?}"),
            None => last = "Timeout".into(),
        }
    }
    format!("{prefix} error {last}")
}

fn listen(port: &str) -> String {
    let prefix = format!("listen {port}");
    let Ok(port) = port.parse::<u16>() else {
        return format!("{prefix} error InvalidArgument");
    };
    let result = TcpSocket::create(IpAddressFamily::Ipv4)
        .and_then(|socket| socket.bind(socket_address(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)).map(|()| socket))
        .and_then(|socket| socket.listen().map(drop));
    match result {
        Ok(()) => format!("{prefix} ok"),
        Err(e) => format!("{prefix} error {e:?}"),
    }
}

async fn http_get(url: &str) -> String {
    use wasip3::http::client;
    use wasip3::http::types::{ErrorCode, Fields, Request, Response, Scheme};
    let prefix = format!("http {url}");
    let Some(rest) = url.strip_prefix("http://") else {
        return format!("{prefix} error InvalidArgument");
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (_trailers_tx, trailers_rx) = wasip3::wit_future::new::<Result<Option<Fields>, ErrorCode>>(|| Ok(None));
    let (request, _sent) = Request::new(Fields::new(), None, trailers_rx, None);
    let set = request.set_scheme(Some(&Scheme::Http)).and_then(|()| request.set_authority(Some(authority))).and_then(|()| request.set_path_with_query(Some(path)));
    if set.is_err() {
        return format!("{prefix} error InvalidArgument");
    }
    let response = match within(client::send(request)).await {
        Some(Ok(response)) => response,
        Some(Err(e)) => return format!("{prefix} error {e:?}"),
        None => return format!("{prefix} error Timeout"),
    };
    let status = response.get_status_code();
    let (_res_tx, res_rx) = wasip3::wit_future::new::<Result<(), ErrorCode>>(|| Ok(()));
    let (mut body, _trailers) = Response::consume_body(response, res_rx);
    let mut bytes = Vec::new();
    loop {
        let (result, chunk) = body.read(Vec::with_capacity(16 * 1024)).await;
        bytes.extend_from_slice(&chunk);
        if !matches!(result, wasip3::wit_bindgen::StreamResult::Complete(_)) {
            break;
        }
    }
    format!("{prefix} ok {status} {}", String::from_utf8_lossy(&bytes).trim())
}

async fn print(line: String) {
    let (mut tx, rx) = wit_stream::new();
    let _ = futures::join!(async { stdout::write_via_stream(rx).await }, async move {
        tx.write_all(format!("{line}\n").into_bytes()).await;
        drop(tx);
    });
}

impl wasip3::exports::cli::run::Guest for NetProbe {
    async fn run() -> Result<(), ()> {
        for arg in environment::get_arguments().into_iter().skip(1) {
            let line = if let Some(name) = arg.strip_prefix("resolve:") {
                resolve(name).await
            } else if let Some(target) = arg.strip_prefix("connect:") {
                connect(target).await
            } else if let Some(port) = arg.strip_prefix("listen:") {
                listen(port)
            } else if arg.starts_with("http:") {
                http_get(&arg["http:".len()..]).await
            } else {
                format!("{arg} error InvalidInput unrecognised probe")
            };
            print(line).await;
        }
        Ok(())
    }
}
