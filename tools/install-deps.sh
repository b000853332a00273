#!/usr/bin/env bash
# Installs every Debian package keystrap's build, tests and benchmarks need.
# Idempotent: skips apt entirely when everything is already present.
set -euo pipefail

pkgs=(
	build-essential pkg-config clang libclang-rt-14-dev
	libtss2-dev libcryptsetup-dev libblkid-dev libsystemd-dev libssl-dev libjson-c-dev
	libsqlite3-dev libpq-dev libevent-dev sqlite3 postgresql
	libcurl4-openssl-dev # bench/server-load.c only: keystrap and keystrap-server do not link it
	debhelper lintian fakeroot curl
	bats bats-assert bats-support
	swtpm swtpm-tools tpm2-tools
	tpm2-openssl libengine-pkcs11-openssl # keystrap-server's keys in a TPM or on a PKCS#11 token
	softhsm2 opensc # hwkeys.bats: a PKCS#11 token and pkcs11-tool
	osslsigncode # predict.bats: the Authenticode oracle
	cryptsetup-bin clevis clevis-luks clevis-tpm2
	iproute2 jq xxd util-linux shellcheck busybox-static
	strace systemd keyutils faketime libfaketime
	qemu-system-x86 qemu-utils ovmf dracut-core dracut-network mmdebstrap clevis-systemd
	prometheus # ships promtool: tests/bats/metrics.bats scrapes the server, checks and tests the alert rules
	chromium chromium-driver socat # dashboard.bats: the pages in a headless browser, through a bridge to the admin socket
	prometheus-node-exporter # probe.bats: its textfile collector exports the probe's result to Prometheus
)

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing packages (${missing[*]}); run as root" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
