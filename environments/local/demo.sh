#!/usr/bin/env bash
# The main job: brings the embedded local cluster up, installs the CRDs, runs the operator
# against it, applies environments/local and waits until every resource is Ready. The
# operator then keeps running in the foreground until Ctrl-C (set VARDHUB_DEMO_EXIT=1 to stop
# once everything is Ready). The cluster stays up; `make cluster-down` takes it down.
set -euo pipefail
cd "$(dirname "$0")/../.."
cluster=environments/local/cluster/cluster.sh
say() { printf '\n[demo] %s\n' "$*"; }

say "building vardhub"
cargo build --release --locked -p vardhub
bin=target/release/vardhub

if ! bash "$cluster" status >/dev/null 2>&1; then
  say "bringing the local cluster up (the first run builds its components)"
  bash "$cluster" up
fi
eval "$(bash "$cluster" env)"

say "installing the CRDs"
kubectl apply --server-side --field-manager=vardhub-demo -f crds/
kubectl wait --for=condition=Established --timeout=60s -f crds/ >/dev/null
kubectl create namespace vardhub-system --dry-run=client -o yaml | kubectl apply --server-side --field-manager=vardhub-demo -f - >/dev/null

say "starting the operator"
log="$VARDHUB_CLUSTER_DIR/logs/vardhub-operator.log"
mkdir -p "$(dirname "$log")"
"$bin" operator --metrics-addr 127.0.0.1:18080 --leader-election-namespace vardhub-system \
  --leader-election-identity demo >"$log" 2>&1 &
operator=$!
trap 'kill "$operator" 2>/dev/null; wait "$operator" 2>/dev/null || true' EXIT

say "applying environments/local"
kubectl apply --server-side --field-manager=vardhub-demo -k environments/local
kubectl wait --for=condition=Ready --timeout=120s regionalnodes --all
kubectl wait --for=condition=Ready --timeout=120s datahubs --all

say "where each region's data lives"
kubectl get vardhub
echo
kubectl get regionalnodes -o custom-columns='NODE:.metadata.name,REGIONS:.spec.regions,NAMESPACE:.status.namespace,KEYS (OPENBAO NAMESPACE):.status.openbaoNamespace,BUCKETS:.status.buckets'
echo
kubectl get datahub national -o go-template='{{range .status.regions}}{{printf "%-4s %-18s node %-20s %s\n" .code .region .node .dataLocation}}{{end}}'
echo
kubectl get datahub national -o go-template='{{range .status.zones}}{{printf "zone %-17s bucket %-32s %s, retention %s\n" .zone .bucket .layout .retention}}{{end}}'
echo
echo "Operator log: $log   metrics: http://127.0.0.1:18080/metrics"

if [ "${VARDHUB_DEMO_EXIT:-0}" = "1" ]; then
  exit 0
fi
say "the operator keeps reconciling; Ctrl-C stops it (the cluster stays up: make cluster-down)"
wait "$operator"
