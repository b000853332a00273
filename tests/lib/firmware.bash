# shellcheck shell=bash
# replay_firmware LOG: extends the swtpm with every extending event of a firmware event
# log, taking the digests as tpm2_eventlog (the oracle, not keystrap) reads them, so that
# the TPM holds what that firmware would have left in it.
replay_firmware() {
	tpm2_eventlog "$1" 2>/dev/null | awk '
		function flush() { if (spec != "" && type != "EV_NO_ACTION") print pcr ":" spec; spec = "" }
		/^- EventNum:/ { flush() }
		/^  PCRIndex:/ { pcr = $2 }
		/^  EventType:/ { type = $2 }
		/^  - AlgorithmId:/ { alg = $3 }
		/^    Digest:/ { d = $2; gsub(/"/, "", d); spec = spec (spec == "" ? "" : ",") alg "=" d }
		END { flush() }' | while read -r s; do
		tpm2_pcrextend "$s" || return 1
	done
}

# oracle_pcrs LOG: "bank pcr hex" for each PCR tpm2_eventlog prints under pcrs:, or status 1
# if it refuses the log.
oracle_pcrs() {
	local out
	out=$(tpm2_eventlog "$1" 2>/dev/null) || return 1
	awk '/^pcrs:/ { p = 1; next }
	     p && /^  [a-z0-9_]+:$/ { b = $1; sub(":", "", b); next }
	     p && /^    [0-9]+ *:/ { gsub(/ /, ""); split($0, a, ":"); sub("0x", "", a[2]); print b, a[1], a[2] }' <<<"$out"
}
