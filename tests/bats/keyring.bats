#!/usr/bin/env bats
# The keyring half of keystrap handoff on this host's real kernel keyrings: tests/lib/keyring-put
# stores what attest_run hands over (a fresh P-256 key, a certificate, known secrets) exactly as
# keystrap handoff does, and keystrap get / status read it back as real other uids (setpriv).
# Each test runs in its own session keyring (keyctl new_session; KEYSTRAP_KEYRING=session) so
# nothing lands in root's user keyring, except the one test of that default, which cleans up.
# The kernel is the oracle for permissions: keyctl itself, from a fresh session, as each uid.

KEYSTRAP=${KEYSTRAP:-$BATS_TEST_DIRNAME/../../build/keystrap}
PUT=$BATS_TEST_DIRNAME/../../build/asan/keyring-put
CONSUMER=65534 # nobody
OTHER=4242     # a throwaway uid with no passwd entry

setup() {
	command -v keyctl >/dev/null || skip "keyctl (keyutils) is not installed"
	[ "$(id -u)" -eq 0 ] || skip "needs root (chown of keys)"
	keyctl new_session >/dev/null || skip "no kernel key retention service here"
	export KEYSTRAP_KEYRING=session
	cd "$BATS_TEST_TMPDIR"
	SECRET="keystrap-test-$(head -c 12 /dev/urandom | xxd -p)"
	printf '%s' "$SECRET" >secret.db
	chmod 600 secret.db
}

teardown() {
	keyctl clear @s >/dev/null 2>&1 || true
}

# Runs a command as uid:gid with no supplementary groups and a fresh session keyring, so only
# the uid and gid count (nothing is possessed through the test's own session).
as() {
	local uid=$1 gid=$2
	shift 2
	setpriv --reuid="$uid" --regid="$gid" --clear-groups keyctl session - "$@" 2>&1 | grep -v '^Joined session keyring'
	return "${PIPESTATUS[0]}"
}

put() {
	"$PUT" --owner $CONSUMER --group $CONSUMER --secret db=secret.db "$@" >cert.pem 2>put.err
}

keystrap_ring() {
	keyctl search @s keyring keystrap
}

@test "the consumer reads the certificate, chain, node key and secret with keystrap get" {
	put
	run as $CONSUMER $CONSUMER "$KEYSTRAP" get secret:db
	[ "$status" -eq 0 ]
	[ "$output" = "$SECRET" ]
	run as $CONSUMER $CONSUMER "$KEYSTRAP" get certificate
	[ "$status" -eq 0 ]
	[ "$output" = "$(cat cert.pem)" ]
	run as $CONSUMER $CONSUMER "$KEYSTRAP" get chain
	[ "$output" = "$(cat cert.pem)" ]
	# The key is PKCS#8 DER of the certificate's key (OpenSSL as the oracle).
	setpriv --reuid=$CONSUMER --regid=$CONSUMER --clear-groups "$KEYSTRAP" get key >key.der
	openssl pkey -inform DER -in key.der -pubout >key.pub
	openssl x509 -in cert.pem -pubkey -noout >cert.pub
	cmp key.pub cert.pub
	openssl asn1parse -inform DER -in key.der | grep -q 'id-ecPublicKey'
	rm -f key.der
}

@test "another uid is refused, by keystrap get and by the kernel" {
	put
	run as $OTHER $OTHER "$KEYSTRAP" get secret:db
	[ "$status" -eq 1 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == "keystrap: permission denied: "*"uid $OTHER"* ]]
	[[ "$output" != *"$SECRET"* ]]
	# The kernel itself: the secret's key id, read directly by that uid.
	id=$(keyctl search "$(keystrap_ring)" user secret:db)
	run as $OTHER $OTHER keyctl print "$id"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Permission denied"* ]]
	run as $OTHER $OTHER keyctl rdescribe "$id"
	[ "$status" -ne 0 ]
	# Positive twin: the consumer reads the same id.
	run as $CONSUMER $CONSUMER keyctl print "$id"
	[ "$status" -eq 0 ]
	[ "$output" = "$SECRET" ]
}

@test "a process outside the permitted group is refused; inside it, another uid reads" {
	put
	run as $OTHER $OTHER "$KEYSTRAP" get secret:db
	[ "$status" -eq 1 ]
	run as $OTHER $CONSUMER "$KEYSTRAP" get secret:db
	[ "$status" -eq 0 ]
	[ "$output" = "$SECRET" ]
	# Without Group= the group gets nothing, even the owner's own gid.
	keyctl clear @s
	"$PUT" --owner $CONSUMER --secret db=secret.db >/dev/null 2>&1
	run as $OTHER $CONSUMER "$KEYSTRAP" get secret:db
	[ "$status" -eq 1 ]
	[[ "$output" == "keystrap: permission denied: "* ]]
	run as $CONSUMER $CONSUMER "$KEYSTRAP" get secret:db
	[ "$output" = "$SECRET" ]
}

@test "a \"keystrap\" keyring another member of the consumer's group made is not taken for the real one" {
	put
	# What any uid whose group is the consumer's can make without privilege: keyrings of its own
	# called "keystrap", given to that group, each holding a secret:db of its choosing. Root
	# makes them here as $OTHER:$CONSUMER; several, since /proc/keys lists keys by serial.
	for i in 1 2 3 4 5 6 7 8; do
		fake=$(keyctl newring keystrap "$(keyctl newring "holder$i" @s)")
		forged=$(keyctl add user secret:db "forged-$i" "$fake")
		for k in "$forged" "$fake"; do
			keyctl chown "$k" $OTHER >/dev/null
			keyctl chgrp "$k" $CONSUMER >/dev/null
			keyctl setperm "$k" 0x3f0b0b00 >/dev/null
		done
	done
	# The kernel lets the consumer read the forgeries (through the group)...
	run as $CONSUMER $CONSUMER keyctl print "$forged"
	[ "$output" = "forged-8" ]
	# ... but keystrap get takes the keyring the consumer owns, every time.
	for _ in 1 2 3; do
		run as $CONSUMER $CONSUMER "$KEYSTRAP" get secret:db
		[ "$status" -eq 0 ]
		[ "$output" = "$SECRET" ]
	done
}

@test "permissions: possessor all, owner and group view+read, nothing for others" {
	put
	ring=$(keystrap_ring)
	for k in $(keyctl rlist "$ring") "$ring"; do
		d=$(keyctl rdescribe "$k")
		IFS=';' read -r type uid gid perm desc <<<"$d"
		[ "$uid" = $CONSUMER ]
		[ "$gid" = $CONSUMER ]
		[ "$perm" = 3f030300 ]
	done
}

@test "every key and the keyring time out when the certificate expires" {
	put --lifetime 50
	ring=$(keystrap_ring)
	for k in $(keyctl rlist "$ring") "$ring"; do
		grep -E "^$(printf '%08x' "$k") " /proc/keys | awk '{ print $4 }' | grep -Eq '^(4[0-9]|50)s$'
	done
	keyctl clear @s
	put --lifetime 2
	run as $CONSUMER $CONSUMER "$KEYSTRAP" get secret:db
	[ "$output" = "$SECRET" ]
	sleep 3
	run as $CONSUMER $CONSUMER "$KEYSTRAP" get secret:db
	[ "$status" -eq 1 ]
	run "$KEYSTRAP" status
	[ "$status" -eq 1 ]
	[[ "$output" == "keystrap: no credentials"* ]]
}

@test "credentials that have already expired are refused and nothing is linked" {
	run "$PUT" --owner $CONSUMER --lifetime 0 --secret db=secret.db
	[ "$status" -eq 1 ]
	[[ "$output" == *"the certificate has already expired"* ]]
	run keystrap_ring
	[ "$status" -ne 0 ]
}

@test "replacing is atomic: a failure half-way leaves the previous keyring whole and nothing new" {
	put --node-id node-a
	old=$(keystrap_ring)
	# Over the owner's key quota (kernel.keys.maxbytes, 20000 bytes for a non-root uid): the
	# keys are made and filled, then handing them to the owner fails.
	head -c 25000 /dev/zero | tr '\0' x >big
	printf 'new-%s' "$SECRET" >secret.new
	run "$PUT" --owner $CONSUMER --group $CONSUMER --secret db=secret.new --secret big=big
	[ "$status" -eq 1 ]
	[[ "$output" == *"key quota"* ]]
	[ "$(keystrap_ring)" = "$old" ]
	[ "$(keyctl list @s | grep -c 'keyring: keystrap')" -eq 1 ]
	run as $CONSUMER $CONSUMER "$KEYSTRAP" get secret:db
	[ "$output" = "$SECRET" ]
	run as $CONSUMER $CONSUMER "$KEYSTRAP" status
	[[ "$output" == *"node-a"* ]]
	# Nothing of the failed attempt is left where root or the consumer could find it.
	! grep -E ' keyring +keystrap:' /proc/keys | grep -v "^$(printf '%08x' "$old") " || false
	! as $CONSUMER $CONSUMER grep -F secret:big /proc/keys || false
	# A name given twice is refused before anything is made.
	run "$PUT" --owner $CONSUMER --secret db=secret.new --secret db=secret.db
	[ "$status" -eq 1 ]
	[[ "$output" == *"appears twice"* ]]
	[ "$(keystrap_ring)" = "$old" ]
	# Positive twin: a good replacement takes over in one step, and the old one is gone.
	put --node-id node-b
	new=$(keystrap_ring)
	[ "$new" != "$old" ]
	[ "$(keyctl list @s | grep -c 'keyring: keystrap')" -eq 1 ]
	run keyctl rdescribe "$old"
	[ "$status" -ne 0 ]
	run as $CONSUMER $CONSUMER "$KEYSTRAP" status
	[[ "$output" == *"node-b"* ]]
}

@test "keystrap status shows what was provisioned and when it expires, never a secret byte" {
	put --lifetime 600
	run "$KEYSTRAP" status
	[ "$status" -eq 0 ]
	[[ "$output" == *"node:        node-test"* ]]
	[[ "$output" == *"server:      https://attest.test:8443"* ]]
	[[ "$output" == *"policy:      7"* ]]
	[[ "$output" == *"attestation: attested at "* ]]
	[[ "$output" =~ remaining:\ +(59[0-9]|600)\ s ]]
	[[ "$output" =~ secret:db\ +${#SECRET}\ bytes\ +uid\ $CONSUMER ]]
	[[ "$output" == *"owner:       uid $CONSUMER, gid $CONSUMER"* ]]
	[[ "$output" =~ generation:\ +[0-9a-f]{32} ]]
	root_status=$output
	run as $CONSUMER $CONSUMER "$KEYSTRAP" status
	[ "$status" -eq 0 ]
	[[ "$output" == *"certificate"* ]]
	consumer_status=$output
	run as $CONSUMER $CONSUMER "$KEYSTRAP" get status
	consumer_get_status=$output
	for text in "$root_status" "$consumer_status" "$consumer_get_status" "$(cat put.err)" \
		"$(cat /proc/keys)" "$(as $CONSUMER $CONSUMER cat /proc/keys)" "$(keyctl show @s)"; do
		[[ "$text" != *"$SECRET"* ]]
	done
	# A uid with no access learns nothing either.
	run as $OTHER $OTHER "$KEYSTRAP" status
	[ "$status" -eq 1 ]
}

@test "nothing is written to a file while storing; the secret and the node key are in none" {
	touch marker
	sleep 1
	# LeakSanitizer cannot run under ptrace.
	ASAN_OPTIONS=detect_leaks=0 strace -f -qq -e trace=open,openat,openat2,creat,rename,renameat2,link,linkat,mknodat,memfd_create \
		-o trace "$PUT" --owner $CONSUMER --group $CONSUMER --secret db=secret.db >cert.pem 2>put.err
	# No file opened for writing, none created or renamed.
	! grep -E 'O_WRONLY|O_RDWR|O_CREAT|creat\(|rename|link|mknod|memfd' trace || false
	setpriv --reuid=$CONSUMER --regid=$CONSUMER --clear-groups "$KEYSTRAP" get key |
		openssl pkey -inform DER -noout -text 2>/dev/null | awk '/^priv:/ { f = 1; next } /^pub:/ { f = 0 } f' |
		tr -d ' :\n' >priv.hex.tmp
	priv=$(cat priv.hex.tmp)
	rm -f priv.hex.tmp
	[ ${#priv} -ge 62 ]
	rm -f trace
	# Files that changed since (other work on this machine may write under /tmp: only ours
	# would hold these bytes).
	while IFS= read -r -d '' f; do
		! grep -qF "$SECRET" "$f" 2>/dev/null || { echo "secret in $f"; false; }
		! xxd -p "$f" 2>/dev/null | tr -d '\n' | grep -qF "$priv" || { echo "node key in $f"; false; }
	done < <(find /run /tmp "$PWD" -xdev -type f -newer marker ! -name secret.db -print0 2>/dev/null)
}

@test "root's user keyring by default: found from a fresh session, as switch_root leaves it" {
	unset KEYSTRAP_KEYRING
	if keyctl search @u keyring keystrap >/dev/null 2>&1; then
		skip "root's user keyring already holds a keystrap keyring; not touching it"
	fi
	"$PUT" --owner $CONSUMER --group $CONSUMER --secret db=secret.db >/dev/null 2>&1
	ring=$(keyctl search @u keyring keystrap)
	run keyctl session - "$KEYSTRAP" status
	status_rc=$status
	status_out=$output
	run as $CONSUMER $CONSUMER "$KEYSTRAP" get secret:db
	keyctl unlink "$ring" @u >/dev/null
	keyctl invalidate "$ring" 2>/dev/null || true
	[ "$status_rc" -eq 0 ]
	[[ "$status_out" == *"keyring:     $ring"* ]]
	[ "$output" = "$SECRET" ]
}

@test "bad input: unknown credential names, extra arguments, a bad KEYSTRAP_KEYRING" {
	put
	run as $CONSUMER $CONSUMER "$KEYSTRAP" get secret:nope
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: no credential 'secret:nope' in the keystrap keyring (keystrap status lists them)" ]
	run "$KEYSTRAP" get password
	[ "$status" -eq 2 ]
	[[ "${lines[0]}" == "keystrap: 'password' is not a credential name" ]]
	run "$KEYSTRAP" get secret:../x
	[ "$status" -eq 2 ]
	run "$KEYSTRAP" get key chain
	[ "$status" -eq 2 ]
	run "$KEYSTRAP" status extra
	[ "$status" -eq 2 ]
	KEYSTRAP_KEYRING=thread run "$PUT" --owner $CONSUMER
	[ "$status" -eq 1 ]
	[[ "$output" == *"KEYSTRAP_KEYRING is neither 'user' nor 'session'"* ]]
	run "$PUT" --owner no-such-user-here
	[ "$status" -eq 1 ]
}

# pair_of FILE: "match" when the PEM key in FILE is its certificate's, else "MISMATCH".
pair_of() {
	if [ "$(openssl pkey -in "$1" -pubout 2>/dev/null)" = "$(openssl x509 -in "$1" -pubkey -noout 2>/dev/null)" ] &&
		grep -q 'BEGIN PRIVATE KEY' "$1"; then echo match; else echo MISMATCH; fi
}

@test "get --bundle: the key (PEM), certificate and chain of one keyring; its negative twins" {
	put
	as $CONSUMER $CONSUMER "$KEYSTRAP" get --bundle >bundle.pem
	[ "$(pair_of bundle.pem)" = match ]
	# The key is the keyring's key, the certificate and chain are byte for byte the keyring's.
	setpriv --reuid=$CONSUMER --regid=$CONSUMER --clear-groups "$KEYSTRAP" get key | openssl pkey -inform DER >key.pem
	[ "$(openssl pkey -in bundle.pem)" = "$(cat key.pem)" ]
	[ "$(grep -c 'BEGIN CERTIFICATE' bundle.pem)" -eq 2 ]
	sed -n '/BEGIN CERTIFICATE/,$p' bundle.pem | cmp - <(cat cert.pem cert.pem)
	rm -f bundle.pem key.pem
	run as $OTHER $OTHER "$KEYSTRAP" get --bundle
	[ "$status" -eq 1 ]
	[[ "$output" == "keystrap: permission denied: "* ]]
	[[ "$output" != *"PRIVATE KEY"* ]]
	run "$KEYSTRAP" get --bundle key
	[ "$status" -eq 2 ]
	[[ "${lines[0]}" == "keystrap: --bundle takes no credential name ('key')" ]]
}

@test "get --generation: reads the pinned keyring; after a renewal it is gone, named, and nothing is printed" {
	put
	g=$(as $CONSUMER $CONSUMER "$KEYSTRAP" get status | sed -n 's/^generation=//p')
	[[ "$g" =~ ^[0-9a-f]{32}$ ]]
	run as $CONSUMER $CONSUMER "$KEYSTRAP" get --generation "$g" secret:db
	[ "$status" -eq 0 ]
	[ "$output" = "$SECRET" ]
	as $CONSUMER $CONSUMER "$KEYSTRAP" get --generation "$g" --bundle >bundle.pem
	[ "$(pair_of bundle.pem)" = match ]
	put
	run as $CONSUMER $CONSUMER "$KEYSTRAP" get --generation "$g" secret:db
	[ "$status" -eq 1 ]
	[ "$output" = "keystrap: generation $g is gone: a renewal replaced the keyring (read the generation and the set again)" ]
	h=$(as $CONSUMER $CONSUMER "$KEYSTRAP" get status | sed -n 's/^generation=//p')
	[[ "$h" =~ ^[0-9a-f]{32}$ ]] && [ "$h" != "$g" ]
	run as $CONSUMER $CONSUMER "$KEYSTRAP" get --generation "$h" certificate
	[ "$output" = "$(cat cert.pem)" ]
	run "$KEYSTRAP" get --generation 12ab certificate
	[ "$status" -eq 2 ]
	[[ "${lines[0]}" == "keystrap: --generation '12ab' is not 32 lowercase hex digits" ]]
}

@test "under back-to-back renewals the bundle always matches; two separate calls do not" {
	put
	# Renewals as fast as keyring-put makes them, until killed.
	(while :; do "$PUT" --owner $CONSUMER --group $CONSUMER >/dev/null 2>&1; done) 3>&- &
	renewer=$!
	ok=0 bad=0 split=0
	for i in $(seq 40); do
		if as $CONSUMER $CONSUMER "$KEYSTRAP" get --bundle >"b$i.pem" 2>"b$i.err"; then
			[ "$(pair_of "b$i.pem")" = match ] && ok=$((ok + 1)) || bad=$((bad + 1))
		fi
		# The two-call way: a certificate, then a key (DER), possibly from two generations.
		as $CONSUMER $CONSUMER "$KEYSTRAP" get certificate >"c$i.pem" 2>/dev/null &&
			setpriv --reuid=$CONSUMER --regid=$CONSUMER --clear-groups "$KEYSTRAP" get key 2>/dev/null |
			openssl pkey -inform DER -pubout >"k$i.pub" 2>/dev/null &&
			[ "$(openssl x509 -in "c$i.pem" -pubkey -noout)" != "$(cat "k$i.pub")" ] && split=$((split + 1))
	done
	kill "$renewer"
	wait "$renewer" 2>/dev/null || true
	echo "# bundles: $ok of 40 read, $bad mismatched; two calls: $split of 40 read a mismatched pair" >&3
	[ "$bad" -eq 0 ]
	[ "$ok" -ge 30 ]
	# The harness does race: without --bundle the pair comes apart.
	[ "$split" -ge 1 ]
}
