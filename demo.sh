#!/usr/bin/env bash
# Sets up everything wasmzip needs and runs the demo on its built-in defaults: generate a signing key,
# pack the `hello` guest with a resource file, verify and inspect the package, and run it with and
# without the capability it requests. Work files go to demo-out/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Installing the wasm32-wasip2 target and building wasmzip and the guests"
rustup target add wasm32-wasip2
cargo build --release --locked
(cd guests && cargo build --release --locked)
wasmzip=target/release/wasmzip

out=demo-out
rm -rf "$out" && mkdir -p "$out"
export WASMZIP_CACHE_DIR="$PWD/$out/cache"

step "wasmzip keygen $out/dev"
"$wasmzip" keygen "$out/dev"

step "wasmzip pack examples/hello --key $out/dev.key"
"$wasmzip" pack examples/hello --key "$out/dev.key" -o "$out/hello.wasmzip"

step "wasmzip verify $out/hello.wasmzip --trust $out/dev.pub"
"$wasmzip" verify "$out/hello.wasmzip" --trust "$out/dev.pub"

step "wasmzip inspect $out/hello.wasmzip"
"$wasmzip" inspect "$out/hello.wasmzip"

step "Run without grants: the guest sees no environment (a warning lists what it asked for)"
GREETING_NAME=operator "$wasmzip" run "$out/hello.wasmzip" --trust "$out/dev.pub" -- first second

step "Run granting what it requests: it now sees GREETING_NAME"
"$wasmzip" run "$out/hello.wasmzip" --trust "$out/dev.pub" --grant-requested --env GREETING_NAME=wasmzip -- first second

step "Tamper with the package: it never runs"
cp "$out/hello.wasmzip" "$out/tampered.wasmzip"
printf 'x' | dd of="$out/tampered.wasmzip" bs=1 seek=200 conv=notrunc status=none
if "$wasmzip" run "$out/tampered.wasmzip" --trust "$out/dev.pub"; then
  echo "the tampered package ran: this is a bug" >&2
  exit 1
else
  echo "refused with exit code $? as expected"
fi
echo
echo "Demo complete."
