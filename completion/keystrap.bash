# shellcheck shell=bash
# bash completion for keystrap and keystrap-server. Commands, subcommands and options are read
# from the binaries' own --help, so completion cannot drift from what they accept.

# _keystrap_help ARGS...: the --help text of the command being completed.
_keystrap_help() { "${COMP_WORDS[0]}" "$@" --help 2>/dev/null; }

_keystrap() {
	local cur=${COMP_WORDS[COMP_CWORD]} words
	COMPREPLY=()
	if [ "$COMP_CWORD" -eq 1 ]; then
		words=$(_keystrap_help | awk '/^Commands:/ { f = 1; next } f && /^  [a-z]/ { print $1 }')
	elif [[ $cur == -* ]]; then
		words=$(_keystrap_help "${COMP_WORDS[@]:1:COMP_CWORD-1}" | grep -oE -- '--[a-z][a-z0-9-]*' | sort -u)
	elif [ "$COMP_CWORD" -eq 2 ]; then
		# keystrap-server's two-word commands: "Usage: keystrap-server node approve ...".
		words=$(_keystrap_help "${COMP_WORDS[1]}" |
			awk -v v="${COMP_WORDS[1]}" '{ for (i = 1; i < NF; i++) if ($i == v && $(i + 1) ~ /^[a-z]+$/) print $(i + 1) }' |
			sort -u)
	fi
	if [ -n "$words" ]; then
		mapfile -t COMPREPLY < <(compgen -W "$words" -- "$cur")
	else
		mapfile -t COMPREPLY < <(compgen -f -- "$cur")
	fi
}
complete -F _keystrap keystrap keystrap-server
