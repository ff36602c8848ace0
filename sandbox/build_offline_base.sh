#!/usr/bin/env bash
# Build the offline base image for expagent sandboxes without pulling from any registry.
#
# Why: machines behind a firewall (and CI) cannot `docker pull debian`, but they can usually
# reach a Debian mirror. debootstrap assembles a minimal root filesystem from the mirror and
# `docker import` turns it into an image.
#
# Usage: build_offline_base.sh IMAGE_TAG [MIRROR]
#   IMAGE_TAG  name:tag of the image to create (expagent computes a content-hash tag)
#   MIRROR     Debian mirror; default: the first deb.debian.org-style URI in /etc/apt/sources.list*,
#              else http://deb.debian.org/debian
# Environment: EXPAGENT_DEBIAN_SUITE (default bookworm), EXPAGENT_BASE_PACKAGES (comma list).
set -euo pipefail

tag="${1:?usage: build_offline_base.sh IMAGE_TAG [MIRROR]}"
suite="${EXPAGENT_DEBIAN_SUITE:-bookworm}"
packages="${EXPAGENT_BASE_PACKAGES:-python3,python3-venv,python3-pip,git,ca-certificates}"

find_mirror() {
  local uri
  uri=$(grep -hoE '^(URIs:|deb) +https?://[^ ]+' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null \
        | grep -v security | head -n1 | awk '{print $2}') || true
  echo "${uri:-http://deb.debian.org/debian}"
}
mirror="${2:-$(find_mirror)}"

for tool in debootstrap docker tar; do
  command -v "$tool" >/dev/null || { echo "error: $tool not found (apt-get install debootstrap docker.io)" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "error: debootstrap needs root (run with sudo)" >&2; exit 2; }

rootfs=$(mktemp -d "${TMPDIR:-/tmp}/expagent-rootfs.XXXXXX")
cleanup() { rm -rf --one-file-system "$rootfs"; }
trap cleanup EXIT

echo "==> debootstrap $suite from $mirror (packages: $packages)"
debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror"

# Keep the image small and reproducible: no apt lists or caches.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
# Point apt in the image at the same mirror so image build steps can apt-get install.
echo "deb $mirror $suite main" > "$rootfs/etc/apt/sources.list"

echo "==> docker import -> $tag"
tar --numeric-owner -C "$rootfs" -c . | docker import \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["/bin/bash"]' \
  --change 'LABEL expagent.sandbox=base' \
  - "$tag"
echo "==> built $tag"
