#!/usr/bin/perl
# make check-version: cal_refresh.control's default_version is the one
# version; META.json carries it as SemVer (1.2 -> 1.2.0), debian/changelog's
# top entry as is.  Fails when either disagrees.
use strict;
use warnings;
use JSON::PP;
sub slurp { local (@ARGV, $/) = @_; <> }
my ($v) = slurp('cal_refresh.control') =~ /^default_version\s*=\s*'([^']+)'/m
	or die "no default_version in cal_refresh.control\n";
(my $sv = $v) =~ s/^(\d+)(?:\.(\d+))?(?:\.(\d+))?$/join '.', $1, $2 || 0, $3 || 0/e;
my $m = decode_json(slurp('META.json'));
my ($d) = slurp('debian/changelog') =~ /^\S+ \(([^)]+)\)/;
my @bad;
push @bad, "META.json version is $m->{version}" if $m->{version} ne $sv;
push @bad, "META.json provides.cal_refresh.version is " .
	($m->{provides}{cal_refresh}{version} // 'missing')
	if ($m->{provides}{cal_refresh}{version} // '') ne $sv;
push @bad, "debian/changelog's top entry is " . ($d // 'unreadable')
	if ($d // '') ne $v;
die "cal_refresh.control's default_version is $v (SemVer $sv), but:\n  " .
	join("\n  ", @bad) . "\n" if @bad;
print "version $v agrees: cal_refresh.control, META.json ($sv), debian/changelog\n";
