#!/usr/bin/env bash
# Validate the Kubernetes manifests under deploy/kubernetes/ offline, with `kubernetes-validate`
# (PyPI), against the JSON schemas of one Kubernetes version. No cluster is involved: this checks
# the manifests' structure and field names, not that they run.
#
# Usage: scripts/kubernetes-validate.sh [--install-only] [DIR|FILE...]
#
#   DIR|FILE...     what to validate (default: deploy/kubernetes/ of this repository). Every *.yaml
#                   and *.yml file in a DIR (recursively) is validated, except kustomization.yaml,
#                   which is not a Kubernetes object: it is checked to list existing files, and
#                   every manifest of its directory but the *.example.yaml ones.
#   --install-only  make the venv and exit (for .ci/setup).
#
# Every object must pass `kubernetes-validate --strict` (no field the schema does not have) against
# Kubernetes ${KUBERNETES_VERSION:-1.34.0}; an object whose kind or apiVersion has no schema, a file
# with no object and a YAML error all fail too (the tool itself only warns about the first two).
# Then a few consistency checks the schemas cannot make: selectors match their pod templates,
# volume mounts and probe ports name what the pod has, $(VAR) references in args are defined,
# resource quantities and sizeLimits are quantities.
#
# Installs kubernetes-validate==${KUBERNETES_VALIDATE_VERSION:-1.37.0} into a private venv at
# ${KUBERNETES_VALIDATE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/wasmzip/kubernetes-validate-venv} once,
# and reuses it afterwards (the schemas ship inside the package, so later runs need no network);
# the system Python is left alone. Exits 0 when everything passed, 1 when something did not, 2 on a
# usage or installation error.
set -euo pipefail

die() { echo "kubernetes-validate.sh: error: $*" >&2; exit 2; }

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
VERSION="${KUBERNETES_VALIDATE_VERSION:-1.37.0}"
K8S_VERSION="${KUBERNETES_VERSION:-1.34.0}"
VENV="${KUBERNETES_VALIDATE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/wasmzip/kubernetes-validate-venv}"

install_only=false
targets=()
for arg in "$@"; do
    case "$arg" in
        --install-only) install_only=true ;;
        -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) die "unknown option $arg (see --help)" ;;
        *) targets+=("$arg") ;;
    esac
done

probe() {
    [[ -x "$1/bin/kubernetes-validate" ]] &&
        [[ "$("$1/bin/kubernetes-validate" --version 2>/dev/null)" == "$VERSION" ]] &&
        "$1/bin/python" -c 'import yaml, kubernetes_validate.utils' 2>/dev/null
}

if ! probe "$VENV"; then
    command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found"
    if [[ ! -x "$VENV/bin/python" ]]; then
        echo "kubernetes-validate.sh: creating venv $VENV" >&2
        mkdir -p "$(dirname "$VENV")"
        "$PYTHON" -m venv "$VENV" || die "could not create venv $VENV (Debian: apt-get install python3-venv)"
    fi
    echo "kubernetes-validate.sh: installing kubernetes-validate==$VERSION into $VENV" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "kubernetes-validate==$VERSION" >&2 || die "pip install kubernetes-validate==$VERSION failed"
    probe "$VENV" || die "kubernetes-validate $VERSION installed in $VENV but does not run"
fi
$install_only && exit 0

if [[ ${#targets[@]} -eq 0 ]]; then
    targets=("$REPO/deploy/kubernetes")
fi

files=()
kustomizations=()
for target in "${targets[@]}"; do
    if [[ -d "$target" ]]; then
        while IFS= read -r -d '' f; do
            if [[ "$(basename "$f")" == kustomization.yaml ]]; then
                kustomizations+=("$f")
            else
                files+=("$f")
            fi
        done < <(find "$target" -type f \( -name '*.yaml' -o -name '*.yml' \) -print0 | sort -z)
    elif [[ -f "$target" ]]; then
        files+=("$target")
    else
        die "$target: no such file or directory"
    fi
done
[[ ${#files[@]} -gt 0 ]] || die "no manifests (*.yaml, *.yml) in ${targets[*]}"

echo "kubernetes-validate.sh: kubernetes-validate $VERSION --strict, Kubernetes $K8S_VERSION, ${#files[@]} files"
status=0
output="$("$VENV/bin/kubernetes-validate" --strict --kubernetes-version "$K8S_VERSION" "${files[@]}" 2>&1)" || status=1
printf '%s\n' "$output"

# The tool only warns about an object it has no schema for (a misspelt kind or apiVersion) and says
# nothing about a file without objects: both are failures here.
if grep -q '^WARN' <<<"$output"; then
    echo "kubernetes-validate.sh: FAIL: an object above has no schema in Kubernetes $K8S_VERSION (misspelt kind or apiVersion?)"
    status=1
fi
for f in "${files[@]}"; do
    if ! grep -qF "INFO $f passed" <<<"$output"; then
        echo "kubernetes-validate.sh: FAIL: $f: no object in it passed"
        status=1
    fi
done

# Consistency checks that the schemas cannot make, and the kustomizations.
"$VENV/bin/python" - "${#kustomizations[@]}" "${kustomizations[@]}" "${files[@]}" <<'PY' || status=1
import os, re, sys
import yaml

count = int(sys.argv[1])
kustomizations = sys.argv[2:2 + count]
files = sys.argv[2 + count:]
failures = []

def fail(where, message):
    failures.append(f"{where}: {message}")

def objects(path):
    try:
        with open(path) as f:
            return [d for d in yaml.safe_load_all(f) if d]
    except Exception:
        return []  # kubernetes-validate has reported it

def name(obj):
    return f"{obj.get('kind', '?')}/{(obj.get('metadata') or {}).get('name', '?')}"

# Kubernetes' resource.Quantity syntax, which the schemas leave as any string.
QUANTITY = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)(([KMGTPE]i)|[numkMGTPE]|[eE][+-]?[0-9]+)?$")

def quantities(where, node, path=""):
    """Every resources.requests/limits value, emptyDir sizeLimit and PVC storage request under node."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}.{key}" if path else key
            if key in ("requests", "limits") and isinstance(value, dict) and path.endswith("resources"):
                for resource, q in value.items():
                    if not QUANTITY.match(str(q)):
                        fail(where, f"{here}.{resource}: `{q}` is not a quantity")
            elif key == "sizeLimit" and not QUANTITY.match(str(value)):
                fail(where, f"{here}: `{value}` is not a quantity")
            else:
                quantities(where, value, here)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            quantities(where, item, f"{path}.{i}")

def matches(selector, labels):
    return all(labels.get(k) == v for k, v in (selector or {}).items())

templates = []  # (where, labels) of every pod template
for path in files:
    for obj in objects(path):
        if not isinstance(obj, dict):
            continue
        where = f"{path}: {name(obj)}"
        spec = obj.get("spec") or {}
        kind = obj.get("kind")
        quantities(where, spec, "spec")
        pod = None
        if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
            template = spec.get("template") or {}
            labels = (template.get("metadata") or {}).get("labels") or {}
            templates.append((where, labels))
            pod = template.get("spec") or {}
            selector = (spec.get("selector") or {}).get("matchLabels")
            if kind != "Job" and not selector:
                fail(where, "spec.selector.matchLabels is empty")
            elif selector and not matches(selector, labels):
                fail(where, f"spec.selector.matchLabels {selector} does not match the template's labels {labels}")
            for tsc in pod.get("topologySpreadConstraints") or []:
                sel = (tsc.get("labelSelector") or {}).get("matchLabels")
                if sel and not matches(sel, labels):
                    fail(where, f"topologySpreadConstraints selector {sel} does not match the template's labels")
        elif kind == "Pod":
            pod = spec
        if pod is None:
            continue
        volumes = {v.get("name") for v in pod.get("volumes") or []}
        claims = {(c.get("metadata") or {}).get("name") for c in spec.get("volumeClaimTemplates") or []}
        for c in (pod.get("initContainers") or []) + (pod.get("containers") or []):
            cwhere = f"{where}: container {c.get('name')}"
            for m in c.get("volumeMounts") or []:
                if m.get("name") not in volumes | claims:
                    fail(cwhere, f"volumeMount {m.get('name')} names no volume")
            ports = {p.get("name") for p in c.get("ports") or []} | {p.get("containerPort") for p in c.get("ports") or []}
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                handler = (c.get(probe) or {}).get("httpGet") or (c.get(probe) or {}).get("tcpSocket")
                if handler and handler.get("port") not in ports:
                    fail(cwhere, f"{probe} port {handler.get('port')} is not a port of the container")
            env = {e.get("name") for e in c.get("env") or []}
            for arg in (c.get("command") or []) + (c.get("args") or []):
                for var in re.findall(r"(?<!\$)\$\(([A-Za-z_][A-Za-z0-9_]*)\)", str(arg)):
                    if var not in env:
                        fail(cwhere, f"$({var}) in its command line is not one of its env variables")

for path in files:
    for obj in objects(path):
        if not isinstance(obj, dict):
            continue
        kind, spec = obj.get("kind"), obj.get("spec") or {}
        selector = None
        if kind == "Service":
            selector = spec.get("selector")
        elif kind in ("PodDisruptionBudget", "NetworkPolicy"):
            key = "selector" if kind == "PodDisruptionBudget" else "podSelector"
            selector = (spec.get(key) or {}).get("matchLabels")
        if selector and templates and not any(matches(selector, labels) for _, labels in templates):
            fail(f"{path}: {name(obj)}", f"selector {selector} matches no pod template here")

for path in kustomizations:
    directory = os.path.dirname(path)
    try:
        with open(path) as f:
            k = yaml.safe_load(f) or {}
    except Exception as e:
        fail(path, f"not YAML: {e}")
        continue
    listed = k.get("resources") or []
    for r in listed:
        if not os.path.exists(os.path.join(directory, r)):
            fail(path, f"resource {r} does not exist")
    for entry in sorted(os.listdir(directory)):
        if (entry.endswith((".yaml", ".yml")) and entry != "kustomization.yaml"
                and not entry.endswith((".example.yaml", ".example.yml")) and entry not in listed):
            fail(path, f"{entry} is not in resources (name it *.example.yaml if it must not be applied)")

for f in failures:
    print(f"ERROR {f}")
if failures:
    sys.exit(1)
print(f"INFO consistency checks passed ({len(files)} files, {len(kustomizations)} kustomization)")
PY

if [[ $status -eq 0 ]]; then
    echo "kubernetes-validate.sh: PASS: every manifest is valid for Kubernetes $K8S_VERSION"
else
    echo "kubernetes-validate.sh: FAIL"
fi
exit $status
