#!/usr/bin/env bash
# The main job: builds the vardhub image, brings the embedded local cluster up (with its real
# node), installs the operator with its Helm chart (two replicas on the real node, pinned by
# the digest just built), applies environments/local and waits until every resource is Ready.
# It then follows the leading operator's log until Ctrl-C (set VARDHUB_DEMO_EXIT=1 to stop
# once everything is Ready). The cluster stays up; `make cluster-down` takes it down.
set -euo pipefail
cd "$(dirname "$0")/../.."
cluster=environments/local/cluster/cluster.sh
say() { printf '\n[demo] %s\n' "$*"; }

say "building the vardhub image (make image)"
image=$(bash operator/image/build.sh)
echo "image: $image"

if ! bash "$cluster" status >/dev/null 2>&1; then
  say "bringing the local cluster up (the first run builds its components)"
  bash "$cluster" up
fi
eval "$(bash "$cluster" env)"
bash "$cluster" import-image target/image/image.tar

say "installing the CRDs"
kubectl apply --server-side --field-manager=vardhub-demo -f crds/
kubectl wait --for=condition=Established --timeout=60s -f crds/ >/dev/null

say "installing the operator with its chart (two replicas on $VARDHUB_NODE_NAME)"
bash environments/local/install-operator.sh "$image"
kubectl -n vardhub-system get pods -o wide

say "applying environments/local"
kubectl apply --server-side --field-manager=vardhub-demo -k environments/local
kubectl wait --for=condition=Ready --timeout=180s regionalnodes --all
kubectl wait --for=condition=Ready --timeout=180s datahubs --all

say "where each region's data lives"
kubectl get vardhub
echo
kubectl get regionalnodes -o custom-columns='NODE:.metadata.name,REGIONS:.spec.regions,NAMESPACE:.status.namespace,KEYS (OPENBAO NAMESPACE):.status.openbaoNamespace,BUCKETS:.status.buckets'
echo
kubectl get datahub national -o go-template='{{range .status.regions}}{{printf "%-4s %-18s node %-20s %s\n" .code .region .node .dataLocation}}{{end}}'
echo
kubectl get datahub national -o go-template='{{range .status.zones}}{{printf "zone %-17s bucket %-32s %s, retention %s\n" .zone .bucket .layout .retention}}{{end}}'

say "the data catalogue (DCAT-AP 3 / HealthDCAT-AP), generated from the Dataset resources"
kubectl wait --for=condition=Ready --timeout=180s -n vardhub-catalog catalogservice/national
kubectl get datasets -n vardhub-catalog -o custom-columns='DATASET:.metadata.name,STAGE:.spec.location.stage,ACCESS:.spec.accessRights,WHERE:.status.distributions[*].accessUrl'
kubectl get catalogservice -n vardhub-catalog national -o go-template='{{printf "catalogue: %v datasets, %v triples, digest %v\n" .status.datasets .status.triples .status.digest}}'
kubectl -n vardhub-catalog get pods -o wide
# The catalogue's component runs in a pod on the real node; a port-forward brings it here.
kubectl -n vardhub-catalog port-forward service/national-catalog 18081:80 >/dev/null 2>&1 &
forward=$!
trap 'kill "$forward" 2>/dev/null; wait "$forward" 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
  curl -fs http://127.0.0.1:18081/readyz >/dev/null 2>&1 && break
  sleep 0.2
done
echo "first lines of http://127.0.0.1:18081/datasets/hip-fracture-product (Accept: text/turtle):"
resource=$(curl -fsS -H 'Accept: text/turtle' http://127.0.0.1:18081/datasets/hip-fracture-product)
printf '%s\n' "$resource" | grep -v '^@prefix' | sed -n '1,12p'
echo
leader=$(kubectl -n vardhub-system get lease vardhub-operator -o jsonpath='{.spec.holderIdentity}')
echo "Operator: leader $leader; its metrics: kubectl -n vardhub-system port-forward pod/$leader 8080, then http://127.0.0.1:8080/metrics"
echo "Catalogue: http://127.0.0.1:18081/catalog (Turtle, JSON-LD, RDF/XML by Accept)"

if [ "${VARDHUB_DEMO_EXIT:-0}" = "1" ]; then
  exit 0
fi
say "following the leading operator's log; Ctrl-C stops following (the operator and the cluster stay up: make cluster-down)"
kubectl -n vardhub-system logs -f "$leader"
