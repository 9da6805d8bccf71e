#!/usr/bin/env bash
# The main job: builds the vardhub image, brings the embedded local cluster up (with its real
# node), installs the operator with its Helm chart (two replicas on the real node, pinned by
# the digest just built), applies environments/local and waits until every resource is Ready,
# runs the reference flow once on the real node (mapping, export, standardisation,
# publishing, in both storage modes) and shows where the data went and the report's address.
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
# A CRD created a moment ago has `status.conditions: null`, which `kubectl wait` reports as an
# error instead of waiting on; retry (bounded) until the API server has written its conditions.
for _ in $(seq 30); do
  kubectl wait --for=condition=Established --timeout=60s -f crds/ >/dev/null 2>&1 && break
  sleep 1
done
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

say "the hubs' pseudonymisation services (applied once the hubs have made their namespaces)"
kubectl apply --server-side --field-manager=vardhub-demo -k environments/local/hub-services
kubectl wait --for=condition=Ready --timeout=180s -n hub-national pseudonymisationservice/pseudonymisation
kubectl wait --for=condition=Ready --timeout=180s -n hub-federated pseudonymisationservice/pseudonymisation

# Runs CronJobs now, as `<namespace>/<cronjob>` pairs, all at once; waits for each to end and
# prints the one JSON line its job prints (counts and addresses, never a row).
run_jobs() {
  local pair ns cj name started=$(date +%s) jobs=()
  for pair in "$@"; do
    ns=${pair%%/*} cj=${pair#*/} name="$cj-demo-$started"
    kubectl -n "$ns" create job "$name" --from="cronjob/$cj" >/dev/null
    jobs+=("$ns/$name")
  done
  for pair in "${jobs[@]}"; do
    ns=${pair%%/*} name=${pair#*/}
    for _ in $(seq 1 300); do
      state=$(kubectl -n "$ns" get job "$name" -o jsonpath='{.status.succeeded}/{.status.failed}')
      case $state in
        1/*) break ;;
        */[1-9]*) if [ "$(kubectl -n "$ns" get job "$name" -o jsonpath='{.status.conditions[?(@.type=="Failed")].status}')" = True ]; then
                    echo "job $ns/$name failed:" >&2; kubectl -n "$ns" logs "job/$name" --tail=20 >&2; exit 1
                  fi ;;
      esac
      sleep 1
    done
    [ "$state" != "${state#1/}" ] || { echo "job $ns/$name did not finish in 300 s" >&2; exit 1; }
    printf '%-28s %s\n' "$ns" "$(kubectl -n "$ns" logs "job/$name" --tail=1)"
  done
}

say "the reference flow on the real node, run now rather than at night: mapping in the regions"
central=(stockholm vastra-gotaland sussa-mellansverige)
federated=(skane ostergotland)
maps=() exports=()
for node in "${central[@]}" "${federated[@]}"; do
  maps+=("region-$node/map-vardfakta")
  exports+=("region-$node/export")
done
run_jobs "${maps[@]}"
say "export through the hubs' pseudonymisation services"
run_jobs "${exports[@]}"
say "the hubs: standardisation (central mode) and publishing"
run_jobs hub-national/standardise
run_jobs hub-national/publish-hip-fracture hub-federated/publish-waiting-times

say "where the data went (objects and bytes per bucket, counted by the S3 server)"
export MC_HOST_vardhub="${VARDHUB_S3_ENDPOINT/:\/\//://$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY@}"
for bucket in $("$VARDHUB_MC" ls vardhub/ --json | sed -n 's/.*"key":"\([^"]*\)\/".*/\1/p'); do
  "$VARDHUB_MC" du vardhub/"$bucket" --json | sed -n 's/.*"size":\([0-9]*\).*"objects":\([0-9]*\).*/\1 \2/p' |
    while read -r size objects; do printf '%-40s %6s objects %12s bytes\n' "$bucket" "$objects" "$size"; done
done
mkdir -p target/demo
report=target/demo/hip-fracture-report.html
"$VARDHUB_MC" cp --quiet vardhub/vardhub-hub-national-products/hip-fracture/report.html "$report" >/dev/null
echo
echo "Report (use case D): s3://vardhub-hub-national-products/hip-fracture/report.html"
echo "  a copy to open in a browser: $PWD/$report"
echo "Federated product (use case B): s3://vardhub-hub-federated-products/waiting-times/waiting_times.parquet"

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
