#!/usr/bin/env bash
# Builds bin/apt-p2p_<version>_<arch>.deb with dpkg-deb from bin/apt-p2p and packaging/.
set -euo pipefail
cd "$(dirname "$0")/.."
ver=$(bin/apt-p2p version | awk '{print $2}')
arch=$(dpkg --print-architecture)
root=$(mktemp -d)
chmod 0755 "$root"
trap 'rm -rf "$root"' EXIT
install -D -m 0755 bin/apt-p2p "$root/usr/sbin/apt-p2p"
install -D -m 0644 packaging/apt-p2p.conf "$root/etc/apt-p2p/apt-p2p.conf"
install -D -m 0644 packaging/apt-p2p.service "$root/lib/systemd/system/apt-p2p.service"
install -D -m 0644 README.md "$root/usr/share/doc/apt-p2p/README.md"
mkdir -p "$root/DEBIAN"
cat > "$root/DEBIAN/control" <<CTRL
Package: apt-p2p
Version: $ver
Architecture: $arch
Maintainer: apt-p2p developers <apt-p2p@localhost>
Section: net
Priority: optional
Depends: adduser
Installed-Size: $(du -k -s "$root" | cut -f1)
Description: share Debian packages between machines over a DHT
 apt-p2p sits between apt and the Debian mirrors. It answers apt from its cache,
 from peers found in a Kademlia DHT keyed by file hash, or from the mirror, and
 only ever hands out bytes that match the hashes of the signed index chain.
CTRL
echo /etc/apt-p2p/apt-p2p.conf > "$root/DEBIAN/conffiles"
cat > "$root/DEBIAN/postinst" <<'POST'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
	if ! getent passwd apt-p2p >/dev/null; then
		adduser --system --group --home /var/cache/apt-p2p --no-create-home --quiet apt-p2p
	fi
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload >/dev/null || true
		systemctl enable --now apt-p2p.service >/dev/null || true
	fi
fi
POST
cat > "$root/DEBIAN/prerm" <<'PRERM'
#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
	systemctl disable --now apt-p2p.service >/dev/null || true
fi
PRERM
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm"
out="bin/apt-p2p_${ver}_${arch}.deb"
dpkg-deb --root-owner-group --build "$root" "$out" >/dev/null
echo "built $out"
