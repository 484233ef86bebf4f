#!/usr/bin/env bash
# Installs the Debian packages apt-p2p's tests (or benchmarks) need, when they are missing.
# Usage: install-deps.sh test|bench
set -euo pipefail
# python3-libtorrent: an independent BEP 5 implementation the mainline DHT interop tests run.
# iproute2: ip and tc for the network-namespace test bed (internal/netbed).
# nftables: nft, the kernel NAT (masquerade) of the NATed-site namespace tests (internal/e2e).
want=(apt apt-utils dpkg-dev gnupg xz-utils bzip2 zstd lz4 ca-certificates python3-libtorrent iproute2 nftables)
if [[ "${1:-test}" == bench ]]; then
	want+=(wrk nginx-light apt-cacher-ng approx hyperfine python3-matplotlib curl systemd util-linux time procps)
fi
missing=()
for p in "${want[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
	exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
	if command -v sudo >/dev/null; then SUDO=sudo; else
		echo "install-deps: missing Debian packages: ${missing[*]} (run as root to install them)" >&2
		exit 1
	fi
else
	SUDO=
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# Do not let package maintainer scripts start services (apt-cacher-ng, approx, nginx) on install.
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee $policy >/dev/null
	$SUDO chmod +x $policy
	trap '$SUDO rm -f $policy' EXIT
fi
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
