//! `native-hello` — native baseline for the `hello-http` guest benchmark.
//!
//! Listens on `127.0.0.1:$PORT` (default 8082) with HTTP/1.1 (keep-alive) on
//! tokio's multi-thread runtime. Every request, whatever its method, path or
//! body, gets `200`, `content-type: text/plain`, body `Hello from wasmzip!\n`
//! — the same response as guests/hello-http.

use std::convert::Infallible;
use std::net::SocketAddr;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const BODY: &[u8] = b"Hello from wasmzip!\n";

async fn hello(_request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let response = Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from_static(BODY)))
        .expect("valid response");
    Ok(response)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> std::io::Result<()> {
    let port: u16 = match std::env::var("PORT") {
        Ok(value) => value.parse().map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("invalid PORT {value:?}"))
        })?,
        Err(_) => 8082,
    };
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    println!("native-hello listening on http://{}", listener.local_addr()?);

    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            if let Err(error) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(hello))
                .await
            {
                eprintln!("native-hello: connection error: {error}");
            }
        });
    }
}
