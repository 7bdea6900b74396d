# wasi-testsuite runtime adapter for wasmzip.
#
# The official WASI test suite (https://github.com/WebAssembly/wasi-testsuite,
# branch `prod/testsuite-base`, which carries the prebuilt tests) runs every
# test through an "adapter": a Python module that the suite's runner loads and
# asks to turn one test's spec (args, env, preopened root dir, proposals,
# world) into a command line.  This is that module for `wasmzip run` and, for
# the `wasi:http/service` tests, `wasmzip serve`.
#
# Usage, from a work tree of the suite's `prod/testsuite-base` branch:
#
#     python3 -m venv /tmp/wts-venv
#     /tmp/wts-venv/bin/pip install -r test-runner/requirements.txt
#     WASMZIP=/path/to/wasmzip WASMZIP_CACHE_DIR=/tmp/wasmzip-cache \
#         /tmp/wts-venv/bin/python ./run-tests \
#         --runtime-adapter /path/to/wasmzip/scripts/wasi-testsuite-adapter.py
#
# Environment:
#   WASMZIP                   the wasmzip binary, plus any extra options to
#                             put before `run`'s (default: `wasmzip` on PATH)
#   WASMZIP_TEST_TIMEOUT      seconds the runner waits for one test (default 5,
#                             the runner's own default)
#   WASMZIP_CACHE_DIR         read by wasmzip itself (compiled-code cache)
#
# Mapping (wasmzip gives a bare .wasm nothing unless granted):
#   root dir of the spec      the suite preopens it as guest `/`:
#                             --grant filesystem:write:/ --mount /=HOST_DIR
#   env NAME=VALUE            --grant env:NAME --env NAME=VALUE
#   proposal "sockets"        --grant network:outbound:* --grant network:inbound:*
#   proposal "http"           --grant network:outbound:* (outgoing wasi:http
#                             requests are governed by the outbound rules)
#   args                      after `--`
#   world wasi:http/service   `wasmzip serve TEST.wasm --allow-unsigned
#                             --listen 127.0.0.1:0` with a fresh data directory
#                             (the runner reads the URL from the first stderr
#                             line); the same grants, plus, for each env value
#                             that is a loopback address (the runner's test
#                             servers), `network:outbound:127.0.0.1:PORT`:
#                             wildcard grants never reach loopback.
#
# This file must print nothing when run as a script: the runner executes it
# once with `--version` to tell module adapters from legacy ones.

import os
import re
import shlex
import subprocess
import tempfile
from typing import Dict, List, Optional, Tuple

_WASMZIP = shlex.split(os.environ.get("WASMZIP", "wasmzip"))


def get_name() -> str:
    return "wasmzip"


def get_version() -> str:
    # `wasmzip --version` prints `wasmzip X.Y.Z`.
    out = subprocess.run([_WASMZIP[0], "--version"], check=True,
                         capture_output=True, encoding="utf-8").stdout
    words = out.split()
    return words[1] if len(words) > 1 else out.strip()


def get_wasi_versions() -> List[str]:
    # `wasmzip run` detects the version from what the code exports:
    # a core module's `_start` (preview 1), `wasi:cli/run@0.2` or `@0.3`.
    return ["wasm32-wasip1", "wasm32-wasip2", "wasm32-wasip3"]


def get_wasi_worlds() -> List[str]:
    return ["wasi:cli/command", "wasi:http/service"]


def get_timeout_seconds() -> float:
    return float(os.environ.get("WASMZIP_TEST_TIMEOUT", "5"))


def compute_argv(test_path: str,
                 args_env_root: Tuple[List[str], Dict[str, str], Optional[str]],
                 proposals: List[str],
                 wasi_world: str,
                 wasi_version: str) -> List[str]:
    del wasi_version  # wasmzip works it out from the binary itself
    serve = wasi_world == "wasi:http/service"
    if wasi_world != "wasi:cli/command" and not serve:
        raise ValueError(f"wasmzip adapter: world {wasi_world} is not supported")

    args, env, root = args_env_root
    argv = list(_WASMZIP) + ["serve" if serve else "run"]
    if serve:
        data = tempfile.mkdtemp(prefix="wasmzip-wts-")
        argv += ["--allow-unsigned", "--listen", "127.0.0.1:0", "--data-dir", data]
        for value in env.values():
            if re.fullmatch(r"127\.0\.0\.1:\d+", value):
                argv += ["--grant", f"network:outbound:{value}"]

    if root:
        # The suite's tests look for a preopen named exactly `/`.
        host = os.path.abspath(str(root))
        argv += ["--grant", "filesystem:write:/", "--mount", f"/={host}"]

    for name, value in env.items():
        argv += ["--grant", f"env:{name}", "--env", f"{name}={value}"]

    network = []
    if "sockets" in proposals:
        network += ["network:outbound:*", "network:inbound:*"]
    if "http" in proposals and "network:outbound:*" not in network:
        network += ["network:outbound:*"]
    for token in network:
        argv += ["--grant", token]

    if serve:
        return argv + [test_path]
    argv += [test_path, "--"] + list(args)
    return argv
