# shellcheck shell=bash
# Stand-ins for mkinitcpio's build-time helpers (its 'functions' file), which Debian does not
# package: each does what mkinitcpio's does to BUILDROOT, on the same terms (same arguments,
# same "==> ERROR:" on stderr counted in _builderrors and return 1, '?' marking an optional
# module), and records its call, one line each, in $STANDIN_CALLS. The kernel is described by
# STANDIN_MODULES (the modules it has); units are looked up in STANDIN_UNITDIR, runtime hooks
# in STANDIN_HOOKDIR, binaries on PATH.

# standin_setup DIR: a fresh BUILDROOT under DIR.
standin_setup() {
	export BUILDROOT=$1/root STANDIN_CALLS=$1/calls
	rm -rf "$BUILDROOT" && mkdir -p "$BUILDROOT"
	: >"$STANDIN_CALLS"
	_builderrors=0
	declare -gA _runhooks=()
	declare -gA _addedmodules=()
}

standin_record() { printf '%s\n' "$*" >>"$STANDIN_CALLS"; }

error() {
	local mesg=$1
	shift
	# shellcheck disable=SC2059 # mkinitcpio's message format
	printf "==> ERROR: $mesg\n" "$@" >&2
	((++_builderrors))
	return 1
}

warning() {
	local mesg=$1
	shift
	# shellcheck disable=SC2059
	printf "==> WARNING: $mesg\n" "$@" >&2
}

add_dir() {
	standin_record add_dir "$@"
	(($#)) || return 1
	[[ -d $BUILDROOT$1 ]] || install -dm"${2:-755}" "$BUILDROOT$1"
}

add_symlink() {
	local name=$1 target=${2:-$1}
	standin_record add_symlink "$@"
	(($#)) || return 1
	[[ -n ${2:-} ]] || target=$(readlink -f "$1")
	add_dir "${name%/*}"
	ln -sfn "$target" "$BUILDROOT$name"
}

add_file() {
	local src=$1 dest=${2:-$1} mode=${3:-}
	standin_record add_file "$@"
	(($#)) || return 1
	if [[ ! -f $src ]]; then
		error "file not found: '%s'" "$src"
		return 1
	fi
	[[ -n $mode ]] || mode=$(stat -c %a "$src")
	install -Dm"$mode" "$src" "$BUILDROOT$dest"
}

# Like mkinitcpio's: a name is looked up on PATH; an ELF file brings the libraries ldd lists.
add_binary() {
	local binary=$1 dest=${2:-} mode=${3:-} lib
	standin_record add_binary "$@"
	if [[ $binary != /* ]]; then
		binary=$(type -P "$1") || binary=$1
	fi
	if [[ ! -f $binary ]]; then
		error "file not found: '%s'" "$binary"
		return 1
	fi
	[[ -n $dest ]] || dest=$binary
	add_file "$binary" "$dest" "$mode" >/dev/null || return
	head -c4 "$binary" | grep -q ELF || return 0
	while read -r lib; do
		[[ -f $lib && ! -e $BUILDROOT$lib ]] || continue
		install -Dm755 "$lib" "$BUILDROOT$lib"
	done < <(ldd "$binary" 2>/dev/null | sed -n 's/.*=> \(\/[^ ]*\).*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) .*/\1/p')
}

# add_module NAME[?]: the module (a marker file, the stand-in has no .ko), or an error naming
# it unless it ends in '?'.
add_module() {
	local target=$1 ign_errors=0
	standin_record add_module "$@"
	if [[ $target == *\? ]]; then
		ign_errors=1
		target=${target%?}
	fi
	target=${target//-/_}
	if [[ " ${STANDIN_MODULES:-} " != *" $target "* ]]; then
		((ign_errors)) && return 0
		error "module not found: '%s'" "$target"
		return 1
	fi
	_addedmodules[$target]=1
	add_dir /usr/lib/modules >/dev/null
	: >"$BUILDROOT/usr/lib/modules/$target.ko"
}

# add_all_modules PATTERN: every module of STANDIN_MODULE_PATHS (kernel-tree paths, e.g.
# kernel/crypto/xts.ko) whose path matches PATTERN; like mkinitcpio's, 0 when one matched.
add_all_modules() {
	local path found=1
	standin_record add_all_modules "$@"
	for path in ${STANDIN_MODULE_PATHS:-}; do
		[[ $path == *$1* ]] || continue
		path=${path##*/}
		path=${path%%.ko*}
		STANDIN_MODULES="${STANDIN_MODULES:-} ${path//-/_}" add_module "$path" && found=0
	done
	return "$found"
}

# add_runscript: the caller's runtime hook as /hooks/NAME, filed under the run_* functions
# it defines, as mkinitcpio writes EARLYHOOKS, HOOKS, LATEHOOKS and CLEANUPHOOKS to /config.
add_runscript() {
	local fn script hookname=${SCRIPT:-${BASH_SOURCE[1]##*/}}
	standin_record add_runscript "$hookname"
	script=$STANDIN_HOOKDIR/$hookname
	if [[ ! -f $script ]]; then
		error "runtime script for '%s' not found" "$hookname"
		return 1
	fi
	add_file "$script" "/hooks/$hookname" 755
	while read -r fn; do
		case $fn in
		run_earlyhook) _runhooks[early]+=" $hookname" ;;
		run_hook) _runhooks[hooks]+=" $hookname" ;;
		run_latehook) _runhooks[late]+=" $hookname" ;;
		run_cleanuphook) _runhooks[cleanup]="$hookname ${_runhooks[cleanup]:-}" ;;
		esac
	done < <(grep -oE '^[[:space:]]*run_[[:alnum:]_]+\(\)' "$script" | tr -d ' \t()')
}

# add_systemd_unit UNIT: the unit, the binaries its Exec*= lines run and its Requires=.
add_systemd_unit() {
	local unit key values
	standin_record add_systemd_unit "$@"
	unit=$STANDIN_UNITDIR/$1
	if [[ ! -f $unit ]]; then
		error "unit file not found: '%s'" "$1"
		return 1
	fi
	add_file "$unit" "/usr/lib/systemd/system/$1" 644
	while IFS='=' read -r key values; do
		read -ra values <<<"$values"
		case $key in
		Requires | OnFailure)
			for v in "${values[@]}"; do add_systemd_unit "$v"; done
			;;
		Exec*)
			case ${values[0]} in
			-*) ;;
			*) add_binary "${values[0]#[@!:+]}" ;;
			esac
			;;
		esac
	done <"$unit"
}

# standin_build FILE: runs FILE's build() as mkinitcpio does (in its shell, errors counted).
standin_build() {
	local hookfile=$1
	unset -f build help
	# shellcheck disable=SC1090
	. "$hookfile"
	SCRIPT=${hookfile##*/} build
	local rc=$?
	((rc == 0 && _builderrors == 0))
}
