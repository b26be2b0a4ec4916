#!/usr/bin/perl
# make check-meta: META.json against PGXN Meta Spec 1.0.0 (required and
# known keys, SemVer, terms, tags, licenses, prereqs, resources, files that
# exist).  Neither PGXN's validator (PGXN::Meta::Validator) nor its schemas
# are packaged in Debian or npm, hence this.
use strict; use warnings; use JSON::PP;
my $f = shift // 'META.json';
my $m = eval { local (@ARGV, $/) = ($f); decode_json(<>) } or die "$f: not JSON: $@";
my @err;
my $sv = qr/(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?/;
my $range = qr/^(?:(?:[=!]=|[<>]=?)\s*)?(?:$sv|0)(?:,\s*(?:(?:[=!]=|[<>]=?)\s*)?$sv)*$/;
my $term = qr/^[^\/\\\s\p{Cntrl}]{2,}$/;
my %lic = map { $_ => 1 } qw(agpl_3 apache_1_1 apache_2_0 artistic_1 artistic_2
	bsd freebsd gfdl_1_2 gfdl_1_3 gpl_1 gpl_2 gpl_3 lgpl_2_1 lgpl_3_0 mit
	mozilla_1_0 mozilla_1_1 openssl perl_5 postgresql qpl_1_0 ssleay sun zlib
	open_source restricted unrestricted unknown);
sub err { push @err, join '', @_ }
sub str { defined $_[0] && !ref $_[0] && length $_[0] }
sub obj { my ($v, $w) = @_; return 1 if ref $v eq 'HASH' && %$v; err("$w: must be a non-empty object"); 0 }
sub known { my ($h, $w, @k) = @_; my %k = map { $_ => 1 } @k;
	err("$w: unknown key '$_'") for grep { !$k{$_} && !/^[xX]_./ } sort keys %$h }
sub path { my ($v, $w) = @_; str($v) && $v !~ m{^/|\\} && -f $v or err("$w: '", $v // '', "' is no file of the distribution") }
obj($m, 'META.json') or die "$f: not an object\n";
known($m, 'top level', qw(name version abstract maintainer license provides meta-spec
	description generated_by tags no_index prereqs release_status resources));
exists $m->{$_} or err("missing required key '$_'")
	for qw(name version abstract maintainer license provides meta-spec);
err("name: not a term") if exists $m->{name} && !(str($m->{name}) && $m->{name} =~ $term);
err("version: not SemVer") if exists $m->{version} && !(str($m->{version}) && $m->{version} =~ /^$sv$/);
for (qw(abstract description generated_by)) { err("$_: must be a non-empty string") if exists $m->{$_} && !str($m->{$_}) }
if (exists $m->{maintainer}) { my $x = $m->{maintainer};
	err("maintainer: a string or a non-empty list of strings")
		unless str($x) || (ref $x eq 'ARRAY' && @$x && !grep { !str($_) } @$x) }
if (exists $m->{license}) { my $x = $m->{license};
	err("license: not a known license, a list of them, or {name: URL}") unless
		(str($x) && $lic{$x}) || (ref $x eq 'ARRAY' && @$x && !grep { !str($_) || !$lic{$_} } @$x)
		|| (ref $x eq 'HASH' && %$x && !grep { !str($_) || !/^[A-Za-z][\w+.-]*:\S+$/ } values %$x) }
if (exists $m->{provides} && obj($m->{provides}, 'provides')) {
	for my $e (sort keys %{$m->{provides}}) { my $p = $m->{provides}{$e}; my $w = "provides.$e";
		err("$w: not a term") unless $e =~ $term;
		obj($p, $w) or next;
		known($p, $w, qw(file version abstract docfile docpath));
		path($p->{file}, "$w.file");
		err("$w.version: not SemVer") unless str($p->{version}) && $p->{version} =~ /^$sv$/;
		path($p->{docfile}, "$w.docfile") if exists $p->{docfile};
		err("$w.abstract: must be a non-empty string") if exists $p->{abstract} && !str($p->{abstract}) } }
if (exists $m->{'meta-spec'} && obj($m->{'meta-spec'}, 'meta-spec')) { my $s = $m->{'meta-spec'};
	known($s, 'meta-spec', qw(version url));
	err("meta-spec.version: must be 1.0.x") unless str($s->{version}) && $s->{version} =~ /^1\.0\.\d+$/;
	err("meta-spec.url: not the spec's URL") if exists $s->{url}
		&& !grep { ($s->{url} // '') eq "$_://pgxn.org/meta/spec.txt" } qw(http https) }
err("release_status: stable, testing or unstable") if exists $m->{release_status}
	&& !grep { ($m->{release_status} // '') eq $_ } qw(stable testing unstable);
if (exists $m->{tags}) { my $t = $m->{tags};
	err("tags: a non-empty list of strings of 2 to 255 characters without / \\ or control characters")
		unless ref $t eq 'ARRAY' && @$t && !grep { !str($_) || !/^[^\/\\\p{Cntrl}]{2,255}$/ } @$t }
if (exists $m->{prereqs} && obj($m->{prereqs}, 'prereqs')) {
	known($m->{prereqs}, 'prereqs', qw(configure build test runtime develop));
	for my $ph (grep { !/^[xX]_/ } sort keys %{$m->{prereqs}}) { my $p = $m->{prereqs}{$ph};
		obj($p, "prereqs.$ph") or next;
		known($p, "prereqs.$ph", qw(requires recommends suggests conflicts));
		for my $r (grep { !/^[xX]_/ } sort keys %$p) { my $w = "prereqs.$ph.$r";
			obj($p->{$r}, $w) or next;
			for my $n (sort keys %{$p->{$r}}) { my $v = $p->{$r}{$n};
				err("$w: '$n' is not a term") unless $n =~ $term;
				err("$w.$n: not a version range") unless defined $v && !ref $v && "$v" =~ $range } } } }
if (exists $m->{resources} && obj($m->{resources}, 'resources')) { my $r = $m->{resources};
	known($r, 'resources', qw(homepage bugtracker repository));
	err("resources.homepage: must be a URL") if exists $r->{homepage} && !(str($r->{homepage}) && $r->{homepage} =~ /^\w[\w+.-]*:\S+$/);
	for ([bugtracker => qw(web mailto)], [repository => qw(url web type)]) { my ($k, @sub) = @$_;
		next unless exists $r->{$k}; obj($r->{$k}, "resources.$k") or next;
		known($r->{$k}, "resources.$k", @sub);
		err("resources.$k.$_: must be a string") for grep { exists $r->{$k}{$_} && !str($r->{$k}{$_}) } @sub } }
if (exists $m->{no_index} && obj($m->{no_index}, 'no_index')) {
	known($m->{no_index}, 'no_index', qw(file directory));
	for (qw(file directory)) { my $x = $m->{no_index}{$_}; next unless defined $x;
		err("no_index.$_: a string or a list of strings") unless str($x) || (ref $x eq 'ARRAY' && !grep { !str($_) } @$x) } }
die "$f is invalid (PGXN Meta Spec 1.0.0):\n  " . join("\n  ", @err) . "\n" if @err;
print "$f is OK (PGXN Meta Spec 1.0.0)\n";
