#!/usr/bin/perl
# eventlog-edit.pl IN OUT EDIT...: rewrites a real firmware event log into the variants real
# firmware writes, so that the tests can show they replay like the log they came from.
#   no-action=PCR[:AFTER]  insert an EV_NO_ACTION event on PCR (any 32-bit value) after
#                          event AFTER (default 0, the first), zero digests, 20 bytes of data
#   pad=N                  append N zero bytes (a fixed-size log area)
#   alg=ID:SIZE            (crypto-agile) declare algorithm ID with SIZE-byte digests in the
#                          Spec ID event and give every later event such a digest (0xa5...)
#   dup=N                  repeat event N right after itself
#   swap=OLD:NEW           (hex digests of one size) every event digest OLD becomes NEW: the
#                          log a next boot writes when what OLD measured is replaced by NEW
#   tag=PCR:ID:TEXT        append an EV_EVENT_TAG event on PCR, tagged event ID (hex) with
#                          TEXT as its data, each digest that bank's hash of TEXT
#   tag-of=PCR:ID:HEX:TEXT the same, each digest that bank's hash of the bytes HEX (may be
#                          empty) instead: an event that does not log what it measured, as
#                          the Linux EFI stub's "LOADED_IMAGE::LoadOptions"
use strict;
use warnings;
use Digest::SHA;

my ($in, $out, @edits) = @ARGV;
open(my $fh, '<:raw', $in) or die "$in: $!";
my $log = do { local $/; <$fh> };
close $fh;

# The Spec ID event is a legacy-format event; a crypto-agile log follows it.
my $first = 32 + unpack('V', substr($log, 28, 4));
my $agile = substr($log, 32, 16) eq "Spec ID Event03\0";
my (@algs, %size);
if ($agile) {
	my $n = unpack('V', substr($log, 32 + 24, 4));
	for my $i (0 .. $n - 1) {
		my ($id, $sz) = unpack('vv', substr($log, 32 + 28 + 4 * $i, 4));
		push @algs, $id;
		$size{$id} = $sz;
	}
}

# Splits the events after the first into their byte strings.
sub events {
	my @e;
	my $o = $first;
	while ($o < length($log)) {
		my $start = $o;
		if ($agile) {
			my $count = unpack('V', substr($log, $o + 8, 4));
			$o += 12;
			for (1 .. $count) {
				my $id = unpack('v', substr($log, $o, 2));
				die "undeclared algorithm $id at $o" unless defined $size{$id};
				$o += 2 + $size{$id};
			}
			$o += 4 + unpack('V', substr($log, $o, 4));
		} else {
			$o += 32 + unpack('V', substr($log, $o + 28, 4));
		}
		die "event at $start runs past the end" if $o > length($log);
		push @e, substr($log, $start, $o - $start);
	}
	return @e;
}

# [offset, size] of each digest in an event's bytes.
sub digest_offsets {
	my ($e) = @_;
	return ([8, 20]) unless $agile;
	my @d;
	my $o = 12;
	for (1 .. unpack('V', substr($e, 8, 4))) {
		my $id = unpack('v', substr($e, $o, 2));
		push @d, [$o + 2, $size{$id}];
		$o += 2 + $size{$id};
	}
	return @d;
}

sub no_action {
	my ($pcr) = @_;
	my $data = "keystrap test\0\0\0\0\0\0\0";
	return pack('VV', $pcr, 3) . ("\0" x 20) . pack('V', length $data) . $data unless $agile;
	my $e = pack('VVV', $pcr, 3, scalar @algs);
	$e .= pack('v', $_) . ("\0" x $size{$_}) for @algs;
	return $e . pack('V', length $data) . $data;
}

my $head = substr($log, 0, $first);
my @ev = events();
my $tail = '';
for (@edits) {
	if (/^no-action=(\d+)(?::(\d+))?$/) {
		my $after = $2 // 0;
		splice(@ev, $after, 0, no_action($1));
	} elsif (/^pad=(\d+)$/) {
		$tail .= "\0" x $1;
	} elsif (/^dup=(\d+)$/) {
		die "no event $1" unless $1 >= 1 && $1 <= @ev;
		splice(@ev, $1, 0, $ev[$1 - 1]);
	} elsif (/^alg=(0x[0-9a-f]+|\d+):(\d+)$/) {
		die "alg= needs a crypto-agile log" unless $agile;
		my ($id, $sz) = (oct($1), $2);
		my $spec = substr($head, 32);
		my $n = unpack('V', substr($spec, 24, 4));
		substr($spec, 28 + 4 * $n, 0) = pack('vv', $id, $sz);
		substr($spec, 24, 4) = pack('V', $n + 1);
		$head = substr($head, 0, 28) . pack('V', length $spec) . $spec;
		for my $e (@ev) {
			my $count = unpack('V', substr($e, 8, 4));
			substr($e, 8, 4) = pack('V', $count + 1);
			substr($e, 12, 0) = pack('v', $id) . ("\xa5" x $sz);
		}
	} elsif (/^swap=([0-9a-f]+):([0-9a-f]+)$/) {
		my ($old, $new) = (pack('H*', $1), pack('H*', $2));
		die "swap= needs two digests of one size" unless length $old == length $new;
		for my $e (@ev) {
			for my $d (digest_offsets($e)) {
				substr($e, $d->[0], $d->[1]) = $new if substr($e, $d->[0], $d->[1]) eq $old;
			}
		}
	} elsif (/^tag=(\d+):([0-9a-fA-F]+):(.*)$/s || /^tag-of=(\d+):([0-9a-fA-F]+):((?:[0-9a-f]{2})*):(.*)$/s) {
		my ($pcr, $id) = ($1, hex($2));
		my ($text, $measured) = defined $4 ? ($4, pack('H*', $3)) : ($3, $3);
		my $data = pack('VV', $id, length $text) . $text;
		my %hash = (4 => 'sha1', 11 => 'sha256', 12 => 'sha384', 13 => 'sha512');
		my $e;
		if ($agile) {
			$e = pack('VVV', $pcr, 6, scalar @algs);
			$e .= pack('v', $_) . Digest::SHA->new($hash{$_})->add($measured)->digest for @algs;
		} else {
			$e = pack('VV', $pcr, 6) . Digest::SHA::sha1($measured);
		}
		push @ev, $e . pack('V', length $data) . $data;
	} else {
		die "unknown edit '$_'";
	}
}
open($fh, '>:raw', $out) or die "$out: $!";
print $fh $head, @ev, $tail;
close $fh;
