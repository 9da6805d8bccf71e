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

say "the data catalogue (DCAT-AP 3 / HealthDCAT-AP), generated from the Dataset resources"
kubectl wait --for=condition=CatalogRendered --timeout=120s -n vardhub-catalog catalogservice/national
kubectl get datasets -n vardhub-catalog -o custom-columns='DATASET:.metadata.name,STAGE:.spec.location.stage,ACCESS:.spec.accessRights,WHERE:.status.distributions[*].accessUrl'
kubectl get catalogservice -n vardhub-catalog national -o go-template='{{printf "catalogue: %v datasets, %v triples, digest %v\n" .status.datasets .status.triples .status.digest}}'
# The catalogue's component, run here as a local process (its pods on the kwok nodes are
# simulated); it reads the datasets through the API server, as in a cluster.
catalog_log="$VARDHUB_CLUSTER_DIR/logs/vardhub-catalog.log"
"$bin" catalog-service --listen 127.0.0.1:18081 --namespace vardhub-catalog --name national \
  >"$catalog_log" 2>&1 &
catalog=$!
trap 'kill "$operator" "$catalog" 2>/dev/null; wait "$operator" "$catalog" 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
  curl -fs http://127.0.0.1:18081/readyz >/dev/null 2>&1 && break
  sleep 0.2
done
echo "first lines of http://127.0.0.1:18081/datasets/hip-fracture-product (Accept: text/turtle):"
resource=$(curl -fsS -H 'Accept: text/turtle' http://127.0.0.1:18081/datasets/hip-fracture-product)
printf '%s\n' "$resource" | grep -v '^@prefix' | sed -n '1,12p'
echo
echo "Operator log: $log   metrics: http://127.0.0.1:18080/metrics"
echo "Catalogue: http://127.0.0.1:18081/catalog (Turtle, JSON-LD, RDF/XML by Accept), log: $catalog_log"

if [ "${VARDHUB_DEMO_EXIT:-0}" = "1" ]; then
  exit 0
fi
say "the operator keeps reconciling and the catalogue is served; Ctrl-C stops both (the cluster stays up: make cluster-down)"
wait "$operator"
