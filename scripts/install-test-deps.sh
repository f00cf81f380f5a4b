#!/usr/bin/env bash
# Installs the machine packages the tests need (PostgreSQL server binaries for the store's
# real-PostgreSQL suite, wrk for the benchmarks, iproute2 and nftables for the
# network package's namespace tests, dig for the DNS tests, curl for the TLS tests, caddy
# for the gateway benchmark). As root with apt-get it installs what is
# missing; otherwise it says what is missing and carries on (those cases then skip visibly).
set -euo pipefail
# What the platform itself needs (runc, tini, the seccomp profile, iproute2, nftables).
"$(dirname "$0")/install-deps.sh"
need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v haproxy >/dev/null 2>&1 || need+=(haproxy)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v nft >/dev/null 2>&1 || need+=(nftables)
command -v dig >/dev/null 2>&1 || need+=(dnsutils)
command -v caddy >/dev/null 2>&1 || need+=(caddy)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "install-test-deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
  echo "install-test-deps: missing ${need[*]} (not root or no apt-get): those tests will be skipped" >&2
fi
