#!/usr/bin/env bash
# Make the local base image localhost/debian-python:bookworm (Debian's python3 3.11 from debootstrap), once.
# No container registry is reachable here, so `FROM python:3.11-slim` cannot be pulled; the Dockerfile keeps
# that default for users and is built here with --build-arg BASE=localhost/debian-python:bookworm.
# Cached twice: the image itself (nothing to do when podman has it) and the root tarball in $RHIN_CACHE
# (default /var/cache/rhin), so a fresh podman store re-imports in seconds instead of re-running debootstrap.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/containers.conf}"
image="${RHIN_BASE_IMAGE:-localhost/debian-python:bookworm}"
cache="${RHIN_CACHE:-/var/cache/rhin}"
tarball="$cache/debian-python-bookworm.tar"
if podman image exists "$image"; then
  echo "base image $image: cached"
  exit 0
fi
if [ ! -s "$tarball" ]; then
  mirror="${DEBIAN_MIRROR:-$(grep -rhoE '^URIs: *\S+/debian/?$' /etc/apt/sources.list.d/ 2>/dev/null | head -1 | awk '{print $2}')}"
  mirror="${mirror:-http://deb.debian.org/debian}"
  root="$(mktemp -d /tmp/rhin-base.XXXXXX)"
  trap 'rm -rf "$root"' EXIT
  echo "debootstrap bookworm from $mirror into $root (about a minute)"
  debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    bookworm "$root" "$mirror" >/dev/null
  # apt lists and caches are not needed in an image that is only a base
  rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/*
  mkdir -p "$cache"
  tar -C "$root" -cf "$tarball.part" .
  mv "$tarball.part" "$tarball"
fi
podman import --change 'CMD ["/bin/bash"]' "$tarball" "$image" >/dev/null
echo "base image $image: imported from $tarball"
