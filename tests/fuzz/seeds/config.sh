#!/usr/bin/env bash
# Seeds fuzz-config with the shipped example and a few shapes it does not show.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../../.." && pwd)
cp "$repo/dist/keystrap.conf.example" "$1/example.conf"
printf '[Unlock]\nDevice=all\nLock=no\nPCRBank=sha1\nPCRs=0,7,15:0\n' >"$1/all.conf"
printf '; minimal\n[Attest]\nServer=https://10.0.0.1:8443/\nCA=/ca.pem\nTimeout=5\n' >"$1/attest.conf"
printf '[Unlock]\r\nDevice = /dev/vda2 \r\nName=\r\n' >"$1/crlf.conf"
