#!/usr/bin/env bash
# Installs charts/vardhub-operator on the embedded local cluster, as a platform engineer
# would: the prerequisites first (the operator's role and policy in OpenBao, the S3 Secret),
# then `helm upgrade --install` with environments/local/operator-values.yaml, pinned to IMAGE
# (repository@sha256:...). OpenBao's root token is used here, to bootstrap, and never given
# to the operator: it logs in with its ServiceAccount and holds only the chart's policy.
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
# OpenBao: the chart's policy, and a Kubernetes auth role for this release's ServiceAccount.
role="vardhub-operator-$namespace"
bao policy write vardhub-operator charts/vardhub-operator/openbao-policy.hcl >/dev/null
bao write "auth/kubernetes/role/$role" bound_service_account_names=vardhub-operator \
  bound_service_account_namespaces="$namespace" token_policies=vardhub-operator \
  token_ttl="${VARDHUB_OPERATOR_TOKEN_TTL:-1h}" >/dev/null
# S3: the local MinIO's root keys, in the Secret the chart names (the operator's own S3
# identity is not made yet).
kubectl -n "$namespace" create secret generic vardhub-operator-s3 \
  --from-literal=accessKeyId="$AWS_ACCESS_KEY_ID" --from-literal=secretAccessKey="$AWS_SECRET_ACCESS_KEY" \
  --dry-run=client -o yaml | kubectl apply --server-side --field-manager=vardhub-install -f - >/dev/null

helm upgrade --install "$release" charts/vardhub-operator --namespace "$namespace" \
  --values environments/local/operator-values.yaml \
  --set image.repository="${image%@*}" --set image.digest="${image#*@}" \
  --set openbao.address="$VAULT_ADDR" --set openbao.kubernetesAuth.role="$role" \
  --set s3.endpoint="$VARDHUB_S3_ENDPOINT" \
  --wait --timeout 300s "$@"
