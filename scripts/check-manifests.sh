#!/usr/bin/env bash
# Checks the Kubernetes manifests under deploy/kubernetes: every kustomization renders with
# `kubectl kustomize`, and every rendered object validates (strictly: unknown fields are errors)
# against the Kubernetes OpenAPI schemas shipped by kubernetes-validate (PyPI), for the oldest
# and the newest Kubernetes version it knows. Files under deploy/kubernetes/optional are
# validated as they are (custom resources of known operators are only parsed). Every
# batcher.toml there is checked with `tfgate-batcher check-config` when the daemon is built
# (scripts/test.sh builds it first; set TFGATE_BATCHER to use another build).
#
#   scripts/check-manifests.sh
#
# Needs kubectl (installs Debian's kubernetes-client when there is none) and python3 with venv.
# kubernetes-validate goes into a cached virtual environment, so later runs work offline:
#   TFGATE_K8S_VENV    (default ${XDG_CACHE_HOME:-$HOME/.cache}/tfgate/venv-k8s)
#   KUBECTL            (default kubectl)
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$TFGATE_ROOT"

KUBERNETES_VALIDATE_VERSION=1.37.0
VENV=${TFGATE_K8S_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/tfgate/venv-k8s}
KUBECTL=${KUBECTL:-kubectl}
MANIFESTS=deploy/kubernetes
BATCHER=${TFGATE_BATCHER:-target/release/tfgate-batcher}

if ! command -v "$KUBECTL" >/dev/null; then
    sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    log "installing kubectl (Debian package kubernetes-client)"
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq kubernetes-client >/dev/null
fi

if ! "$VENV/bin/python" -c 'import kubernetes_validate' 2>/dev/null; then
    log "creating $VENV with kubernetes-validate $KUBERNETES_VALIDATE_VERSION"
    rm -rf "$VENV"
    python3 -m venv "$VENV" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
    "$VENV/bin/pip" install -q --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" \
        || die "pip could not install kubernetes-validate into $VENV"
fi

# Overlays name the base directory in `resources`, which kustomize v2 (kubectl 1.20 and older,
# Debian bookworm's kubernetes-client) cannot read; the base itself renders with any kubectl.
kubectl_minor=$("$KUBECTL" version --client -o json 2>/dev/null \
    | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["minor"].rstrip("+"))')

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sources=()   # "label<TAB>file" of each YAML stream to validate
for dir in "$MANIFESTS"/base "$MANIFESTS"/overlays/*/; do
    dir=${dir%/}
    [ -f "$dir/kustomization.yaml" ] || continue
    if [ "$dir" != "$MANIFESTS/base" ] && [ "$kubectl_minor" -lt 21 ]; then
        log "warning: skipping $dir: kubectl 1.$kubectl_minor's kustomize is too old for overlays (needs 1.21+)"
        continue
    fi
    out="$work/$(echo "$dir" | tr / _).yaml"
    if ! "$KUBECTL" kustomize "$dir" >"$out" 2>"$work/err"; then
        cat "$work/err" >&2
        die "$dir does not render: kubectl kustomize $dir failed (above)"
    fi
    sources+=("$dir"$'\t'"$out")
done
for f in "$MANIFESTS"/optional/*.yaml; do
    [ -e "$f" ] && sources+=("$f"$'\t'"$f")
done

printf '%s\n' "${sources[@]}" >"$work/sources"
"$VENV/bin/python" - "$work/sources" <<'PY' || die "the Kubernetes manifests do not validate (FAIL lines above)"
import sys, yaml
from kubernetes_validate import utils

# Custom resources whose schemas are not part of Kubernetes: parsed, not validated.
CRD_GROUPS = ("monitoring.coreos.com/",)
versions = sorted({utils.all_versions()[0], utils.latest_version()}, key=lambda v: [int(x) for x in v.split(".")])
failures = checked = 0
for line in open(sys.argv[1]).read().splitlines():
    label, path = line.split("\t")
    try:
        docs = [d for d in yaml.safe_load_all(open(path)) if d]
    except yaml.YAMLError as e:
        print(f"FAIL {label}: not valid YAML: {e}")
        failures += 1
        continue
    if not docs:
        print(f"FAIL {label}: no objects")
        failures += 1
    for doc in docs:
        if not isinstance(doc, dict):
            print(f"FAIL {label}: a document is not a mapping: {doc!r:.60}")
            failures += 1
            continue
        name = "%s/%s" % (doc.get("kind", "?"), (doc.get("metadata") or {}).get("name", "?"))
        api = str(doc.get("apiVersion", ""))
        if api.startswith(CRD_GROUPS):
            print(f"skip {label}: {name} ({api} is a custom resource)")
            continue
        problems = []
        for version in versions:
            try:
                utils.validate(doc, version, strict=True)
            except utils.ValidationError as e:
                where = ".".join(str(p) for p in e.path) or "(top level)"
                problems.append(f"Kubernetes {version}: {where}: {e.message}")
            except utils.SchemaNotFoundError as e:
                problems.append(e.message)
            except KeyError as e:
                problems.append(f"missing {e}")
        checked += 1
        if problems:
            failures += 1
            for p in problems:
                print(f"FAIL {label}: {name}: {p}")
        else:
            print(f"ok   {label}: {name}")
print("%d objects checked against Kubernetes %s, %d failed" % (checked, " and ".join(versions), failures))
sys.exit(1 if failures else 0)
PY
log "manifests render and validate"

# The daemon's configs in the ConfigMaps: the same check the daemon makes at start-up.
if [ -x "$BATCHER" ]; then
    while IFS= read -r config; do
        "$BATCHER" check-config "$config" >/dev/null || die "$config: tfgate-batcher check-config refused it (above)"
        log "ok   $config (tfgate-batcher check-config)"
    done < <(find "$MANIFESTS" -name batcher.toml | sort)
else
    log "warning: $BATCHER is not built: the batcher.toml files were not checked (scripts/build.sh builds it)"
fi
