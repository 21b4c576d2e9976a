#!/usr/bin/perl
# What Sisimai, the reference bounce classifier, reads in each report of
# sisimai's set-of-emails, written once into tests/data/set-of-emails/manifest.tsv
# so the corpus test (tests/cases/bounce_corpus.rs) needs no Perl.
#
#   apt-get install -y libsisimai-perl     # 4.25
#   perl scripts/sisimai-manifest.pl tests/data/set-of-emails/maildir/bsd \
#       > tests/data/set-of-emails/manifest.tsv
#
# One line per record Sisimai makes (a report may name several recipients),
# and one line with an empty reason for a report it reads nothing from.
use strict;
use warnings;
use Sisimai;
use Encode qw(decode encode FB_DEFAULT);

my $dir = shift or die "usage: $0 MAILDIR\n";
opendir(my $dh, $dir) or die "$dir: $!\n";
my @files = sort grep { /\.eml$/ } readdir($dh);
my @columns = qw(file recipient reason status action softbounce feedbacktype smtpagent messageid diagnostic);
print join("\t", @columns), "\n";
# Sisimai hands back bytes: kept as valid UTF-8 (invalid bytes replaced), cut at 200 characters.
my $clean = sub {
    my $v = decode('UTF-8', shift // '', FB_DEFAULT);
    $v =~ s/[\t\r\n]+/ /g;
    encode('UTF-8', substr($v, 0, 200));
};
for my $file (@files) {
    my $records = Sisimai->make("$dir/$file", 'delivered' => 1, 'vacation' => 1) || [];
    print join("\t", $file, ('') x (@columns - 1)), "\n" unless @$records;
    for my $r (@$records) {
        print join("\t", map { $clean->($_) } $file, $r->recipient->address, $r->reason, $r->deliverystatus,
            $r->action, $r->softbounce, $r->feedbacktype, $r->smtpagent, $r->messageid, $r->diagnosticcode), "\n";
    }
}
