# The OpenBao policy of the vardhub operator: exactly the calls its controllers make, derived
# from operator/src/adapters/openbao.rs and operator/src/controller/. Write it in the root
# namespace and bind it to the operator's Kubernetes auth role, for example:
#
#   bao policy write vardhub-operator openbao-policy.hcl
#   bao write auth/kubernetes/role/vardhub-operator \
#     bound_service_account_names=vardhub-operator bound_service_account_namespaces=vardhub-system \
#     token_policies=vardhub-operator token_ttl=1h
#
# Child namespaces (region-<node>, hub-<hub>) are reached by prefixing the namespace; '+'
# stands for one path segment, so those rules apply in every first-level child namespace.
# Writing policies (sys/policy/vardhub-*) lets the operator grant workloads what it grants
# them; OpenBao cannot limit what a written policy contains, so this token stays powerful.

# ---------------------------------------------------------------- root namespace: namespaces
# Admin::ensure_namespace (GET, then POST when it gets a 404) and Admin::delete_namespace (DELETE) for region-<node>
path "sys/namespaces/region-*" {
  capabilities = ["read", "update", "delete"]
}
# Same three calls for hub-<hub>
path "sys/namespaces/hub-*" {
  capabilities = ["read", "update", "delete"]
}

# pseudonymisation_service::claim_keys: the operator's own registry namespace (GET, then POST
# once); never deleted
path "sys/namespaces/vardhub-claims" {
  capabilities = ["read", "update"]
}

# ---------------------------------------------------------------- root namespace: policies
# Admin::ensure_policy (GET/PUT) and delete_policy (DELETE). vaultrs 0.8 uses the legacy sys/policy/<name> path, not sys/policies/acl
path "sys/policy/vardhub-region-*" {
  capabilities = ["read", "update", "delete"]
}
# Same for the hub policies (vardhub-hub-<hub>)
path "sys/policy/vardhub-hub-*" {
  capabilities = ["read", "update", "delete"]
}
# Same for vardhub-pseudonymisation.<ns>.<name> and vardhub-pseudonymisation-reidentify.<ns>.<name>
path "sys/policy/vardhub-pseudonymisation*" {
  capabilities = ["read", "update", "delete"]
}

# ---------------------------------------------------------------- root namespace: Kubernetes auth roles
# Admin::ensure_kubernetes_role (GET, then POST) and delete_kubernetes_role (DELETE) for node roles; body is limited to the 4 fields the operator sends
path "auth/kubernetes/role/vardhub-region-*" {
  capabilities = ["read", "create", "update", "delete"]
}
# Same for hub roles (storage::TOKEN_TTL_SECONDS = 900)
path "auth/kubernetes/role/vardhub-hub-*" {
  capabilities = ["read", "create", "update", "delete"]
}
# Same for pseudonymisation roles (pseudonymisation_service::build::TOKEN_TTL_SECONDS = 3600)
path "auth/kubernetes/role/vardhub-pseudonymisation.*" {
  capabilities = ["read", "create", "update", "delete"]
}

# ---------------------------------------------------------------- root namespace: pseudonymisation Transit mounts
# Transit::ensure_mount via Admin::transit: GET sys/mounts (whole mount table of the root namespace; cannot be narrowed)
path "sys/mounts" {
  capabilities = ["read"]
}
# Transit::ensure_mount enable (POST, type=transit) and Admin::delete_mount (DELETE) of pseudonymisation/<ns>/<name>
path "sys/mounts/pseudonymisation/+/+" {
  capabilities = ["update", "delete"]
}
# Transit::ensure_key / ensure_convergent_key: GET keys/<domain>, POST keys/<domain> (create) and GET again
path "pseudonymisation/+/+/keys/+" {
  capabilities = ["read", "update"]
}

# ---------------------------------------------------------------- root namespace: pseudonymisation PKI mounts
# Admin::ensure_server_pki enable (POST, type=pki, max_lease_ttl) and Admin::delete_mount (DELETE) of pseudonymisation-pki/<ns>/<name>
path "sys/mounts/pseudonymisation-pki/+/+" {
  capabilities = ["update", "delete"]
}
# Admin::ensure_server_pki: LIST issuers (is there a CA yet?), then generate the root CA inside OpenBao once
path "pseudonymisation-pki/+/+/issuers" {
  capabilities = ["list"]
}
path "pseudonymisation-pki/+/+/root/generate/internal" {
  capabilities = ["update"]
}
# Admin::ensure_server_pki: GET and POST roles/server (the service's DNS names only)
path "pseudonymisation-pki/+/+/roles/server" {
  capabilities = ["read", "create", "update"]
}

# ---------------------------------------------------------------- child namespaces region-<node> / hub-<hub>
# storage::ensure_custody -> Transit::ensure_mount and Admin::ensure_kv_mount (via transit_in / in_namespace): GET <ns>/sys/mounts
path "+/sys/mounts" {
  capabilities = ["read"]
}
# Transit::ensure_mount enable of the custodian's "transit" mount (POST, type=transit)
path "+/sys/mounts/transit" {
  capabilities = ["update"]
}
# Admin::ensure_kv_mount enable of the custodian's "secrets" KV v2 mount (POST, type=kv, options.version=2)
path "+/sys/mounts/secrets" {
  capabilities = ["update"]
}
# Transit::ensure_custodian_key for a node: GET keys/region (vaultrs read + ReadKeyRaw), POST keys/region (create)
path "+/transit/keys/region" {
  capabilities = ["read", "update"]
}
# Transit::ensure_custodian_key for a node: POST keys/region/config when the rotation period changed
path "+/transit/keys/region/config" {
  capabilities = ["update"]
}
# Transit::ensure_custodian_key for a hub: GET/POST keys/hub
path "+/transit/keys/hub" {
  capabilities = ["read", "update"]
}
# Transit::ensure_custodian_key for a hub: POST keys/hub/config (period 0 is enforced if someone changed it)
path "+/transit/keys/hub/config" {
  capabilities = ["update"]
}
# storage::ensure_credential (regional node): Admin::read_secret GET + write_secret POST of secrets/data/s3/node
path "+/secrets/data/s3/node" {
  capabilities = ["read", "create", "update"]
}
# storage::ensure_credential (data hub): the ingest credential of each member node, secrets/data/s3/ingest/<node>
path "+/secrets/data/s3/ingest/+" {
  capabilities = ["read", "create", "update"]
}
# storage::ensure_credential (data hub): credential of the hub role "standardise"
path "+/secrets/data/s3/roles/standardise" {
  capabilities = ["read", "create", "update"]
}
# storage::ensure_credential (data hub): credential of the hub role "publish"
path "+/secrets/data/s3/roles/publish" {
  capabilities = ["read", "create", "update"]
}
# storage::ensure_credential (data hub): credential of the hub role "expose" (API or SFTP on)
path "+/secrets/data/s3/roles/expose" {
  capabilities = ["read", "create", "update"]
}
# s3::Storage::ensure_bucket via storage::OpenBaoClaims: the claim written before a bucket is
# created (create-only), and read when a bucket is found without its owner tag
# (secrets/data/claims/buckets/<bucket>)
path "+/secrets/data/claims/buckets/+" {
  capabilities = ["read", "create"]
}
# storage::ensure_access and remove_access: the owner record of a custodian's policy and role,
# read on every pass and written once, before either exists (secrets/data/claims/access/<name>)
path "+/secrets/data/claims/access/+" {
  capabilities = ["read", "create"]
}
# pseudonymisation_service::claim_keys: the owner record of a service's mounts, policies and
# roles in vardhub-claims, read on every pass and written once, before any of them exists
# (the KV mount itself is covered by the +/sys/mounts rules above)
path "vardhub-claims/secrets/data/claims/pseudonymisation/+" {
  capabilities = ["read", "create"]
}
# storage::ensure_owned_namespace: the owner record of a region-<node> or hub-<hub> namespace,
# read and written once (create-only), before the namespace is created
path "vardhub-claims/secrets/data/claims/namespaces/+" {
  capabilities = ["read", "create"]
}
# data_hub::ensure_host_key: the SFTP server's host key, read, and written once when missing
path "+/secrets/data/exposure/sftp-host-key" {
  capabilities = ["read", "create"]
}

# ---------------------------------------------------------------- child namespace hub-<hub>: the exposure API's PKI
# Admin::ensure_server_pki (via in_namespace) enable (POST, type=pki, max_lease_ttl) of exposure-pki; it goes with the hub's namespace
path "+/sys/mounts/exposure-pki" {
  capabilities = ["update"]
}
# Admin::ensure_server_pki: LIST issuers, then generate the root CA inside OpenBao once
path "+/exposure-pki/issuers" {
  capabilities = ["list"]
}
path "+/exposure-pki/root/generate/internal" {
  capabilities = ["update"]
}
# Admin::ensure_server_pki: GET and POST roles/server (the API's two in-cluster names only)
path "+/exposure-pki/roles/server" {
  capabilities = ["read", "create", "update"]
}
