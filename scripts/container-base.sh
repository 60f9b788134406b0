#!/bin/sh
# Builds the local stand-in for the image's Node.js base on machines that cannot pull from a
# registry (this project's CI and developer machines), and keeps it between runs.
#   scripts/container-base.sh [--rebuild] [--print-name]
# Prints the base's name on its last line; build the image on it with
#   podman build --network host --build-arg NODE_IMAGE="$(scripts/container-base.sh)" .
# What it does, once: debootstrap a minimal Debian trixie from this machine's apt mirror,
# import it into podman, then add the CA certificates this machine trusts (the npm registry is
# reached through a TLS proxy), nodejs and npm from Debian (Node 20.19), and NODE_EXTRA_CA_CERTS.
# Later runs find the image (`podman image exists`) and return at once.
# Environment: L2_NODE_BASE (image name, default localhost/l2ops-node-base:trixie),
#   L2_DEBIAN_MIRROR (default: the first Debian mirror in /etc/apt), CONTAINERS_CONF (default:
#   scripts/podman/containers.conf beside this script).
set -eu
here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
name=${L2_NODE_BASE:-localhost/l2ops-node-base:trixie}
rebuild=0
while [ "$#" -gt 0 ]; do
  case "$1" in
    --rebuild) rebuild=1; shift ;;
    --print-name) echo "$name"; exit 0 ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "container-base: unknown option '$1'; see --help" >&2; exit 2 ;;
  esac
done
: "${CONTAINERS_CONF:=$here/podman/containers.conf}"
export CONTAINERS_CONF
log() { echo "container-base: $*" >&2; }

for tool in podman debootstrap; do
  command -v "$tool" >/dev/null 2>&1 || {
    log "$tool is not installed; run: apt-get install podman runc debootstrap uidmap"
    exit 2
  }
done

if [ "$rebuild" = 0 ] && podman image exists "$name"; then
  log "$name already exists (use --rebuild to make it again)"
  echo "$name"
  exit 0
fi

mirror=${L2_DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
  # deb822 sources first (URIs: lines), then one-line sources; skip the security archive.
  mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ { for (i = 2; i <= NF; i++) print $i }' | grep -v -e security -e nodesource | grep debian | head -n 1 || true)
fi
if [ -z "$mirror" ]; then
  mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^(https?|file):/) { print $i; break } }' | grep -v security | grep debian | head -n 1 || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}

work=$(mktemp -d "${TMPDIR:-/tmp}/l2ops-base.XXXXXX")
rootfs_image="localhost/l2ops-trixie-rootfs:build-$$"
cleanup() {
  rm -rf "$work"
  podman image rm -f "$rootfs_image" >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "debootstrap trixie from $mirror (a few minutes)"
debootstrap --variant=minbase --include=ca-certificates trixie "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -n 20 "$work/debootstrap.log" >&2
  log "debootstrap failed (full log above, last 20 lines)"
  exit 1
}
# Keep the image small and free of this machine's details.
rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
log "importing the root file system"
tar -C "$work/rootfs" -c . | podman import --change 'CMD ["/bin/bash"]' - "$rootfs_image" >/dev/null
rm -rf "$work/rootfs"

mkdir -p "$work/ctx/ca"
# The CA certificates this machine adds to Debian's bundle (its TLS proxy among them).
for cert in /usr/local/share/ca-certificates/*.crt /usr/local/share/ca-certificates/*/*.crt; do
  [ -f "$cert" ] && cp "$cert" "$work/ctx/ca/"
done
cat >"$work/ctx/Containerfile" <<EOF
FROM $rootfs_image
COPY ca/ /usr/local/share/ca-certificates/
RUN update-ca-certificates >/dev/null \\
 && apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs npm \\
 && apt-get clean \\
 && rm -rf /var/lib/apt/lists/*
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
CMD ["node"]
EOF
log "adding CA certificates, nodejs and npm"
podman build --network host --tag "$name" "$work/ctx" >"$work/build.log" 2>&1 || {
  tail -n 30 "$work/build.log" >&2
  log "podman build of the base failed (last 30 lines above)"
  exit 1
}
log "built $name ($(podman run --rm --network host "$name" node --version))"
echo "$name"
