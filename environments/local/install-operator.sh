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
positional=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
  positional+=("$1")
  shift
done
[ "${1:-}" = "--" ] && shift
image=${positional[0]:?usage: install-operator.sh IMAGE [RELEASE [NAMESPACE]] [-- helm arguments]}
release=${positional[1]:-vardhub}
namespace=${positional[2]:-vardhub-system}

kubectl create namespace "$namespace" --dry-run=client -o yaml |
  kubectl apply --server-side --field-manager=vardhub-install -f - >/dev/null
kubectl label namespace "$namespace" --overwrite pod-security.kubernetes.io/enforce=restricted >/dev/null
# OpenBao: the chart's policy, and a Kubernetes auth role for this release's ServiceAccount.
role="vardhub-operator-$namespace"
bao policy write vardhub-operator charts/vardhub-operator/openbao-policy.hcl >/dev/null
bao write "auth/kubernetes/role/$role" bound_service_account_names=vardhub-operator \
  bound_service_account_namespaces="$namespace" token_policies=vardhub-operator \
  token_ttl="${VARDHUB_OPERATOR_TOKEN_TTL:-1h}" >/dev/null
# S3: the operator's own identity on MinIO (a user with the chart's s3-policy.json: the
# buckets named vardhub-*), made with MinIO's root keys, which the operator never sees. Its
# keys go into the Secret the chart names; a reinstall keeps them.
user="vardhub-operator-$namespace"
if key=$(kubectl -n "$namespace" get secret vardhub-operator-s3 -o jsonpath='{.data.secretAccessKey}' 2>/dev/null) &&
  [ -n "$key" ]; then
  key=$(base64 -d <<<"$key")
else
  key=$(openssl rand -hex 24)
fi
MC_CONFIG_DIR=$(mktemp -d)
export MC_CONFIG_DIR
trap 'rm -rf "$MC_CONFIG_DIR"' EXIT
# The root keys reach mc through its environment, never its command line.
MC_HOST_local="${VARDHUB_S3_ENDPOINT/:\/\//://$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY@}"
export MC_HOST_local
mc() { "${VARDHUB_MC:?eval the output of cluster.sh env first}" --quiet "$@"; }
mc admin user add local "$user" "$key" >/dev/null
mc admin policy create local vardhub-operator charts/vardhub-operator/s3-policy.json >/dev/null
if ! out=$(mc admin policy attach local vardhub-operator --user "$user" 2>&1); then
  grep -qi "already" <<<"$out" || { printf '%s\n' "$out" >&2; exit 1; }
fi
kubectl -n "$namespace" create secret generic vardhub-operator-s3 \
  --from-literal=accessKeyId="$user" --from-file=secretAccessKey=<(printf '%s' "$key") \
  --dry-run=client -o yaml | kubectl apply --server-side --field-manager=vardhub-install -f - >/dev/null

helm upgrade --install "$release" charts/vardhub-operator --namespace "$namespace" \
  --values environments/local/operator-values.yaml \
  --set image.repository="${image%@*}" --set image.digest="${image#*@}" \
  --set openbao.address="$VAULT_ADDR" --set openbao.kubernetesAuth.role="$role" \
  --set s3.endpoint="$VARDHUB_S3_ENDPOINT" \
  --wait --timeout 300s "$@"
