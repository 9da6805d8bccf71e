#!/usr/bin/env bash
# Runs every check and test of vardhub: formatting, clippy, the chart's lint, the unit tests,
# and the integration tests against the local cluster (real kube-apiserver, etcd, controller
# manager, scheduler, kwok nodes, a real node with containerd, OpenBao and MinIO), which this
# script brings up and takes down again, with the vardhub image it builds loaded into the real
# node. `make test` calls it; so does CI.
set -euo pipefail
cd "$(dirname "$0")/.."
cluster=environments/local/cluster/cluster.sh
say() { printf '\n[test] %s\n' "$*"; }

started=$(date +%s)
# A clean clone gains nothing from incremental compilation; it only costs disk.
if [ -n "${CI:-}" ]; then export CARGO_INCREMENTAL=0; fi
echo "free disk where the build goes: $(df -h --output=avail . | tail -1 | tr -d ' ')"
say "toolchain"
for component in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
    rustup component add "$component"
  fi
done

say "building the local cluster's components (cached after the first run)"
bash "$cluster" build

say "the vardhub image (a static release build; cached after the first run)"
VARDHUB_IMAGE=$(bash operator/image/build.sh)
export VARDHUB_IMAGE
echo "image: $VARDHUB_IMAGE"
again=$(bash operator/image/build.sh 2>/dev/null)
[ "$again" = "$VARDHUB_IMAGE" ] || { echo "a second build of the image gave $again" >&2; exit 1; }
echo "a second build gives the same digest"

say "the SHACL validator for the catalogue tests (pySHACL, cached after the first run)"
VARDHUB_SHACL_PYTHON=$(bash tests/shacl/setup.sh)
export VARDHUB_SHACL_PYTHON

say "formatting and clippy (warnings denied)"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

say "bringing the local cluster up"
bash "$cluster" down   # a no-op unless an earlier run left something behind
bash "$cluster" up
trap 'say "taking the local cluster down"; bash "$cluster" down' EXIT
eval "$(bash "$cluster" env)"
bash "$cluster" import-image target/image/image.tar

say "chart: helm lint and template"
helm lint --strict charts/vardhub-operator
helm template vardhub charts/vardhub-operator --namespace vardhub-system --include-crds >/dev/null
if helm template vardhub charts/vardhub-operator --set replicas=0 >/dev/null 2>&1; then
  echo "values.schema.json accepted replicas=0" >&2
  exit 1
fi
# The chart refuses an install whose prerequisites are missing, and says what to create.
refused() {
  local expected=$1 out
  shift
  if out=$(helm "$@" 2>&1); then
    echo "helm $* succeeded; expected a refusal naming: $expected" >&2
    exit 1
  fi
  grep -qF "$expected" <<<"$out" || { echo "helm $* was refused without naming '$expected': $out" >&2; exit 1; }
  echo "refused as expected: $expected"
}
refused "neither openbao.kubernetesAuth.role nor openbao.tokenSecret.name" template vardhub charts/vardhub-operator \
  --set openbao.address=http://openbao:8200
refused "s3.credentialsSecret.name is not" template vardhub charts/vardhub-operator \
  --set s3.endpoint=http://s3:9000
refused "Secret vardhub-system/absent does not exist" install vardhub charts/vardhub-operator \
  --namespace vardhub-system --dry-run=server \
  --set openbao.address=http://openbao:8200 --set openbao.tokenSecret.name=absent

say "unit and integration tests"
results=$(mktemp)
cargo test --workspace --locked -- --include-ignored 2>&1 | tee "$results"
passed=$(awk '/^test result:/ {for (i = 1; i <= NF; i++) if ($i ~ /^passed;?$/) s += $(i - 1)} END {print s + 0}' "$results")
failed=$(awk '/^test result:/ {for (i = 1; i <= NF; i++) if ($i ~ /^failed;?$/) s += $(i - 1)} END {print s + 0}' "$results")
rm -f "$results"

trap - EXIT
say "taking the local cluster down"
bash "$cluster" down

say "all tests passed in $(( $(date +%s) - started )) s"
echo "cargo: $passed passed, $failed failed"
