//! `concurrent-p3` — a WASI 0.3 command that holds many futures at once, so a host can check that
//! they run concurrently, that its limits hold while a guest waits, and that a guest whose futures
//! never resolve is stopped at its deadline.
//!
//! | arguments                | what it does                                                        | output |
//! |--------------------------|---------------------------------------------------------------------|--------|
//! | `timers N MS`            | N `monotonic-clock.wait-for(MS)` at once, joined                    | `timers N ok ELAPSED_MS` |
//! | `connects N IP:PORT`     | N TCP connects to IP:PORT at once (each sends `ping\n`, reads one reply) | `connects N ok K` (K succeeded), or the first error |
//! | `sleep MS`               | one `wait-for(MS)`                                                  | `slept MS` |
//! | `never`                  | awaits a `future` whose writer it keeps: it never resolves          | (nothing) |
//! | `spin`                   | computes forever without yielding                                   | (nothing) |
//! | `handles N`              | makes N stream pairs and holds them all                             | `handles N ok` |
//! | `alloc MIB`              | allocates and touches MIB MiB of linear memory                      | `alloc MIB ok` |
//! | `argv0`                  | prints the program name it was given                                | `argv0 NAME` |

use std::net::SocketAddr;

use futures::future::join_all;
use wasip3::cli::{environment, stdout};
use wasip3::clocks::monotonic_clock;
use wasip3::sockets::types::{IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress, TcpSocket};
use wasip3::{wit_future, wit_stream};

wasip3::cli::command::export!(Concurrent);

struct Concurrent;

async fn print(line: String) {
    let (mut tx, rx) = wit_stream::new();
    let _ = futures::join!(async { stdout::write_via_stream(rx).await }, async move {
        tx.write_all(format!("{line}\n").into_bytes()).await;
        drop(tx);
    });
}

fn ms_since(start: u64) -> u64 {
    monotonic_clock::now().saturating_sub(start) / 1_000_000
}

async fn timers(n: usize, ms: u64) -> String {
    let start = monotonic_clock::now();
    join_all((0..n).map(|_| monotonic_clock::wait_for(ms * 1_000_000))).await;
    format!("timers {n} ok {}", ms_since(start))
}

fn socket_address(addr: SocketAddr) -> IpSocketAddress {
    match addr {
        SocketAddr::V4(v4) => {
            let [a, b, c, d] = v4.ip().octets();
            IpSocketAddress::Ipv4(Ipv4SocketAddress { port: v4.port(), address: (a, b, c, d) })
        }
        SocketAddr::V6(v6) => {
            let [a, b, c, d, e, f, g, h] = v6.ip().segments();
            IpSocketAddress::Ipv6(Ipv6SocketAddress { port: v6.port(), flow_info: 0, address: (a, b, c, d, e, f, g, h), scope_id: 0 })
        }
    }
}

async fn connect_once(addr: SocketAddr) -> Result<(), String> {
    let family = if addr.is_ipv4() { IpAddressFamily::Ipv4 } else { IpAddressFamily::Ipv6 };
    let socket = TcpSocket::create(family).map_err(|e| format!("{e:?}"))?;
    socket.connect(socket_address(addr)).await.map_err(|e| format!("{e:?}"))?;
    let (mut tx, rx) = wit_stream::new();
    let _sent = socket.send(rx);
    tx.write_all(b"ping\n".to_vec()).await;
    drop(tx);
    let (mut data, _result) = socket.receive();
    let (_, reply) = data.read(Vec::with_capacity(64)).await;
    if reply.is_empty() { Err("no reply".into()) } else { Ok(()) }
}

async fn connects(n: usize, target: &str) -> String {
    let Ok(addr) = target.parse::<SocketAddr>() else {
        return format!("connects {n} error InvalidArgument");
    };
    let results = join_all((0..n).map(|_| connect_once(addr))).await;
    match results.iter().find_map(|r| r.as_ref().err()) {
        Some(e) => format!("connects {n} error {e}"),
        None => format!("connects {n} ok {}", results.len()),
    }
}

impl wasip3::exports::cli::run::Guest for Concurrent {
    async fn run() -> Result<(), ()> {
        let args = environment::get_arguments();
        let a: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
        let line = match a.as_slice() {
            ["timers", n, ms] => match (n.parse(), ms.parse()) {
                (Ok(n), Ok(ms)) => timers(n, ms).await,
                _ => return Err(()),
            },
            ["connects", n, target] => match n.parse() {
                Ok(n) => connects(n, target).await,
                Err(_) => return Err(()),
            },
            ["sleep", ms] => {
                let Ok(ms) = ms.parse::<u64>() else { return Err(()) };
                monotonic_clock::wait_for(ms * 1_000_000).await;
                format!("slept {ms}")
            }
            ["never"] => {
                let (writer, reader) = wit_future::new::<Result<(), wasip3::sockets::types::ErrorCode>>(|| Ok(()));
                let _ = reader.await;
                drop(writer);
                "resolved".to_string()
            }
            ["handles", n] => {
                let Ok(n) = n.parse::<usize>() else { return Err(()) };
                let held: Vec<_> = (0..n).map(|_| wit_stream::new::<u8>()).collect();
                let line = format!("handles {} ok", held.len());
                drop(held);
                line
            }
            ["argv0"] => format!("argv0 {}", args.first().map(String::as_str).unwrap_or("")),
            ["alloc", mib] => {
                let Ok(mib) = mib.parse::<usize>() else { return Err(()) };
                let block = vec![1u8; mib << 20];
                format!("alloc {mib} ok {}", std::hint::black_box(&block).iter().step_by(4096).map(|b| *b as usize).sum::<usize>() >> 8)
            }
            ["spin"] => {
                let mut x = 1u64;
                loop {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            }
            _ => return Err(()),
        };
        print(line).await;
        Ok(())
    }
}
