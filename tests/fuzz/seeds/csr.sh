#!/usr/bin/env bash
# Seeds for fuzz-csr: DER requests as OpenSSL writes them (P-256/SHA-256, and the refused kinds).
set -euo pipefail
out=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=node -keyout "$tmp/k" \
	-outform DER -out "$out/p256" 2>/dev/null
openssl req -new -key "$tmp/k" -subj / -outform DER -out "$out/p256-empty-subject" 2>/dev/null
openssl req -new -key "$tmp/k" -sha384 -subj /CN=node -outform DER -out "$out/p256-sha384" 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-384 -nodes -subj /CN=node -keyout "$tmp/k384" \
	-outform DER -out "$out/p384" 2>/dev/null
