#!/usr/bin/env bash
# Installs what the platform itself needs on this machine. As root, every tenant instance runs
# in a runc sandbox (OCI runtime) with tini as its PID 1 and the containers' default seccomp
# profile (Debian's golang-github-containers-common); iproute2 and nftables give environments
# their private networks. Without root nothing is needed (instances then run unsandboxed as
# the invoking user, and lanes up says so).
set -euo pipefail
[ "$(id -u)" = 0 ] || exit 0
need=()
[ -x /usr/sbin/runc ] || [ -x /usr/bin/runc ] || need+=(runc)
command -v tini >/dev/null 2>&1 || need+=(tini)
[ -f /usr/share/containers/seccomp.json ] || need+=(golang-github-containers-common)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v nft >/dev/null 2>&1 || need+=(nftables)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if command -v apt-get >/dev/null 2>&1; then
  echo "install-deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
  echo "install-deps: missing ${need[*]}: install them (lanes up refuses to run tenant code as root without a sandbox)" >&2
  exit 1
fi
