#!/usr/bin/env bash
# Builds the vardhub OCI image without a container daemon: one static binary (musl, every
# subcommand) and the CA bundle on an empty base, run as the non-root user 65532.
#
#   operator/image/build.sh            build; print the image's reference pinned by digest
#
# Writes target/image/layout (an OCI image layout) and target/image/image.tar (the same as
# one file, for `ctr images import` or `skopeo copy oci-archive:...`), and
# target/image/reference (repository@sha256:...). The build is reproducible: paths are
# remapped out of the binary and every timestamp is the commit's, so the same commit built
# with the same toolchain, musl-tools and CA bundle gives the same digest. operator/Containerfile builds the same contents with Docker or Podman.
set -euo pipefail
cd "$(dirname "$0")/../.."
readonly TARGET=x86_64-unknown-linux-musl
readonly REPOSITORY=${VARDHUB_IMAGE_REPOSITORY:-ghcr.io/vardhub/vardhub}
readonly OUT=target/image
say() { printf '[image] %s\n' "$*" >&2; }

# The musl target and its C compiler (for the C parts of aws-lc-sys).
if ! rustup target list --installed 2>/dev/null | grep -qx "$TARGET"; then
  say "adding the Rust target $TARGET"
  rustup target add "$TARGET" >&2
fi
if ! command -v musl-gcc >/dev/null 2>&1; then
  say "installing musl-tools (Debian) for the static build"
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq musl-tools >&2
  else
    echo "musl-gcc is missing: install Debian's musl-tools (sudo apt-get install musl-tools)" >&2
    exit 1
  fi
fi

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
created=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
cargo_home=${CARGO_HOME:-$HOME/.cargo}

say "building vardhub $version ($TARGET, release)"
# Paths of this checkout and of the crate registry are remapped, so that the binary does not
# depend on where the repository was cloned. (SOURCE_DATE_EPOCH is left out of cargo's
# environment: crates that read it would be rebuilt at every commit.)
remap="--remap-path-prefix=$PWD=/vardhub --remap-path-prefix=$cargo_home=/cargo"
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="-C strip=symbols $remap"
export CFLAGS_x86_64_unknown_linux_musl="-ffile-prefix-map=$PWD=/vardhub -ffile-prefix-map=$cargo_home=/cargo"
cargo build --release --locked --target "$TARGET" -p vardhub >&2
binary=target/$TARGET/release/vardhub

ca_bundle=/etc/ssl/certs/ca-certificates.crt
[ -f "$ca_bundle" ] || { echo "no CA bundle at $ca_bundle (Debian's ca-certificates)" >&2; exit 1; }

mkdir -p "$OUT"
digest=$(python3 operator/image/oci.py --out "$OUT" --name "$REPOSITORY:$version" --created "$created" \
  --user 65532:65532 \
  --file "$binary=/vardhub:0755" \
  --file "$ca_bundle=/etc/ssl/certs/ca-certificates.crt:0644" \
  --entrypoint /vardhub \
  --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
  --label "org.opencontainers.image.source=https://github.com/vardhub/vardhub" \
  --label "org.opencontainers.image.version=$version" \
  --label "org.opencontainers.image.revision=$revision" \
  --label "org.opencontainers.image.title=vardhub" \
  --label "org.opencontainers.image.licenses=Apache-2.0")
printf '%s@%s\n' "$REPOSITORY" "$digest" >"$OUT/reference"
say "image $REPOSITORY:$version, $(du -h "$OUT/image.tar" | cut -f1) ($OUT/image.tar)"
printf '%s@%s\n' "$REPOSITORY" "$digest"
