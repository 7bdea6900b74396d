//! `net-probe` — exercises guest networking so a host can check which socket
//! operations its policy allows. Each argument is one probe; each probe prints
//! exactly one line to stdout. The exit status is always 0.
//!
//! | argument            | operation                                                   |
//! |---------------------|-------------------------------------------------------------|
//! | `resolve:NAME`      | `ToSocketAddrs` on `(NAME, 0)`                              |
//! | `connect:ADDR:PORT` | resolve `ADDR:PORT`, TCP connect (5 s timeout) to each       |
//! |                     | address until one succeeds, send `ping\n`, read ≤ 64 bytes once (5 s timeout) |
//! | `listen:PORT`       | `TcpListener::bind(("0.0.0.0", PORT))`                       |
//!
//! ADDR may be a host name, an IPv4 address or a bracketed IPv6 address
//! (`connect:[::1]:8080`).
//!
//! Output lines:
//!
//! ```text
//! resolve NAME ok <ip1,ip2,...>          IPs sorted and comma-joined
//! resolve NAME error <ErrorKind:?> <msg>
//! connect ADDR:PORT ok <reply>           reply = bytes read, lossy UTF-8, trimmed
//! connect ADDR:PORT error <ErrorKind:?> <msg>
//! listen PORT ok
//! listen PORT error <ErrorKind:?> <msg>
//! ```
//!
//! An unrecognised argument prints `<arg> error InvalidInput unrecognised probe`.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(5);

fn error_line(prefix: &str, e: &io::Error) -> String {
    format!("{prefix} error {:?} {e}", e.kind())
}

fn resolve(name: &str) -> String {
    let prefix = format!("resolve {name}");
    match (name, 0u16).to_socket_addrs() {
        Ok(addrs) => {
            let mut ips: Vec<IpAddr> = addrs.map(|a| a.ip()).collect();
            ips.sort();
            ips.dedup();
            let ips: Vec<String> = ips.iter().map(IpAddr::to_string).collect();
            format!("{prefix} ok {}", ips.join(","))
        }
        Err(e) => error_line(&prefix, &e),
    }
}

fn connect_one(addr: &SocketAddr) -> io::Result<TcpStream> {
    match TcpStream::connect_timeout(addr, TIMEOUT) {
        Err(e) if e.kind() == ErrorKind::Unsupported => TcpStream::connect(addr),
        other => other,
    }
}

fn exchange(mut stream: TcpStream) -> io::Result<String> {
    stream.write_all(b"ping\n")?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    let mut buf = [0u8; 64];
    let n = stream.read(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).trim().to_string())
}

fn connect(target: &str) -> String {
    let prefix = format!("connect {target}");
    let addrs: Vec<SocketAddr> = match target.to_socket_addrs() {
        Ok(addrs) => addrs.collect(),
        Err(e) => return error_line(&prefix, &e),
    };
    let mut last_err = io::Error::new(ErrorKind::NotFound, "name resolved to no addresses");
    for addr in &addrs {
        match connect_one(addr) {
            Ok(stream) => {
                return match exchange(stream) {
                    Ok(reply) => format!("{prefix} ok {reply}"),
                    Err(e) => error_line(&prefix, &e),
                };
            }
            Err(e) => last_err = e,
        }
    }
    error_line(&prefix, &last_err)
}

fn listen(port: &str) -> String {
    let prefix = format!("listen {port}");
    let port: u16 = match port.parse() {
        Ok(p) => p,
        Err(e) => return error_line(&prefix, &io::Error::new(ErrorKind::InvalidInput, e)),
    };
    match TcpListener::bind(("0.0.0.0", port)) {
        Ok(_listener) => format!("{prefix} ok"),
        Err(e) => error_line(&prefix, &e),
    }
}

fn main() {
    let mut out = io::stdout().lock();
    for arg in std::env::args().skip(1) {
        let line = if let Some(name) = arg.strip_prefix("resolve:") {
            resolve(name)
        } else if let Some(target) = arg.strip_prefix("connect:") {
            connect(target)
        } else if let Some(port) = arg.strip_prefix("listen:") {
            listen(port)
        } else {
            format!("{arg} error InvalidInput unrecognised probe")
        };
        writeln!(out, "{line}").unwrap();
        out.flush().unwrap();
    }
}
