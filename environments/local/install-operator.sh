#!/usr/bin/env bash
# Installs charts/vardhub-operator on the embedded local cluster, as a platform engineer
# would: the prerequisites first (the Secrets the chart names), then `helm upgrade --install`
# with environments/local/operator-values.yaml, pinned to IMAGE (repository@sha256:...).
#
#   install-operator.sh IMAGE [RELEASE [NAMESPACE]] [-- extra helm arguments]
#
# Needs the cluster's environment (eval "$(cluster.sh env)").
set -euo pipefail
cd "$(dirname "$0")/../.."
image=${1:?usage: install-operator.sh IMAGE [RELEASE [NAMESPACE]]}
release=${2:-vardhub}
namespace=${3:-vardhub-system}
shift $(($# < 3 ? $# : 3))
[ "${1:-}" = "--" ] && shift

kubectl create namespace "$namespace" --dry-run=client -o yaml |
  kubectl apply --server-side --field-manager=vardhub-install -f - >/dev/null
kubectl label namespace "$namespace" --overwrite pod-security.kubernetes.io/enforce=restricted >/dev/null
# The operator's credentials, in Secrets the chart refers to by name. The local cluster's
# OpenBao token and S3 keys are its bootstrap credentials (see the README's notes on what
# runs with which rights).
kubectl -n "$namespace" create secret generic vardhub-operator-openbao \
  --from-literal=token="$VAULT_TOKEN" --dry-run=client -o yaml |
  kubectl apply --server-side --field-manager=vardhub-install -f - >/dev/null
kubectl -n "$namespace" create secret generic vardhub-operator-s3 \
  --from-literal=accessKeyId="$AWS_ACCESS_KEY_ID" --from-literal=secretAccessKey="$AWS_SECRET_ACCESS_KEY" \
  --dry-run=client -o yaml | kubectl apply --server-side --field-manager=vardhub-install -f - >/dev/null

helm upgrade --install "$release" charts/vardhub-operator --namespace "$namespace" \
  --values environments/local/operator-values.yaml \
  --set image.repository="${image%@*}" --set image.digest="${image#*@}" \
  --set openbao.address="$VAULT_ADDR" --set s3.endpoint="$VARDHUB_S3_ENDPOINT" \
  --wait --timeout 300s "$@"
