#!/usr/bin/env bash
# Every variable with a cleanup attribute (_cleanup_*, __attribute__((cleanup(...)))) is
# initialised where it is declared: a goto or early return before its first assignment would
# otherwise hand stack garbage to free(), close() or a destructor. One TAP line; each offending
# declarator is named FILE:LINE. Usage: check-cleanup.sh [FILE...] (default: every C file of
# common/, node/, server/, tests/ and bench/).
set -euo pipefail
if [ $# -eq 0 ]; then
	cd "$(dirname "$0")/.."
	mapfile -t files < <(find common node server tests bench -name '*.[ch]' | sort)
	set -- "${files[@]}"
fi
# shellcheck disable=SC2016 # Perl, not shell, expands these
bad=$(perl -e '
	my $attr = qr/(?:\b_cleanup_\w*\s*(?:\((?:[^()]|\([^()]*\))*\))?|__attribute__\s*\(\(\s*cleanup\s*\(\s*\w+\s*\)\s*\)\))/;
	for my $file (@ARGV) {
		open(my $fh, "<", $file) or die "$file: $!\n";
		local $/;
		my $text = <$fh>;
		close $fh;
		# Comments, strings and character constants out (newlines kept, so lines still count).
		$text =~ s{/\*.*?\*/|//[^\n]*|"(?:[^"\\\n]|\\.)*"|\x27(?:[^\x27\\\n]|\\.)*\x27}{
			my $m = $&; $m =~ /^\/\// ? "" : $m =~ /^\// ? "\n" x ($m =~ tr/\n//) : "0" }gse;
		my @lines = split /\n/, $text, -1;
		for (my $i = 0; $i < @lines; $i++) {
			next if $lines[$i] =~ /^\s*#/ || $lines[$i] !~ $attr;
			# The declaration up to its ";", which may be lines further down.
			my ($stmt, $j) = ($lines[$i], $i);
			$stmt .= "\n" . $lines[++$j] while $stmt !~ /;/ && $j + 1 < @lines;
			$stmt =~ s/$attr//g;
			$stmt =~ s/;.*//s;
			# Declarators split at commas outside brackets; each needs a "=" outside them.
			my ($depth, $init, $decl) = (0, 0, "");
			for my $c (split(//, $stmt), ",") {
				if ($depth == 0 && $c eq ",") {
					printf "%s:%d: %s\n", $file, $i + 1, $decl =~ /(\w+)\W*$/ ? $1 : $decl unless $init;
					($init, $decl) = (0, "");
					next;
				}
				$depth++ if $c =~ /[({\[]/;
				$depth-- if $c =~ /[)}\]]/;
				$init = 1 if $depth == 0 && $c eq "=";
				$decl .= $c if $depth == 0;
			}
		}
	}' "$@")
if [ -n "$bad" ]; then
	echo "not ok 1 - every _cleanup_ variable is initialised where it is declared"
	while IFS= read -r l; do echo "#   not initialised: $l"; done <<<"$bad"
	exit 1
fi
echo "ok 1 - every _cleanup_ variable is initialised where it is declared ($# files)"
