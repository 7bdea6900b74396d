//! Starts the component's linear memory at 4 MiB. A request to this transform allocates a few
//! hundred KiB (the body, the output, the chunks it reads); with the default initial size the heap
//! grows by `memory.grow` on every request, and the host's pooling allocator changes page
//! protections for each growth and again when the slot is reset, about four `mprotect` calls per
//! request. Pages the guest never touches cost nothing.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_FAMILY").as_deref() == Ok("wasm") {
        println!("cargo::rustc-link-arg-cdylib=--initial-memory=4194304");
    }
    println!("cargo::rerun-if-changed=build.rs");
}
