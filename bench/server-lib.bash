# shellcheck shell=bash
# What the server benches share: the tests' helpers (free_port, server_pki, operator_key, ...)
# for the keystrap-server at $SERVER, and the server they start ($SRV_PID), stopped on exit.

BATS_TEST_DIRNAME=$PWD/tests/bats
# shellcheck source=tests/lib/swtpm.bash
. tests/lib/swtpm.bash
KEYSTRAP_SERVER=$SERVER
# shellcheck source=tests/lib/server.bash
. tests/lib/server.bash

SRV_PID=
stop() {
	if [ -n "$SRV_PID" ]; then
		kill -TERM "$SRV_PID" 2>/dev/null || true
		wait "$SRV_PID" 2>/dev/null || true
		SRV_PID=
	fi
}
trap stop EXIT
