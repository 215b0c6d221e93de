package fimento

import (
	"bufio"
	"os"
	"strings"
	"testing"

	fimentosb "github.com/finsync/finsync/extract/fimento/sandbox"
)

// TestRedactionCorpus runs the redactor over bank texts as banks print
// them (testdata/redaction_corpus.tsv): every identifier must go, and
// nothing else. It reports the hit count and fails on any miss or false
// positive.
func TestRedactionCorpus(t *testing.T) {
	people := map[string]*redactor{
		"marta":  newRedactor(fimentosb.GoodSSN, "", "Märta", "Åkerlund"),
		"bjorn":  newRedactor("19771011-4682", "", "Björn", "Bergström"),
		"asa":    newRedactor("", "5569876543", "Åsa", "Öberg"), // an id that fails the checksum: known, so found anyway
		"jurgen": newRedactor("", "", "Jürgen", "Müller"),
		"orjan":  newRedactor("", "", "Ørjan", "Sæther"),
		"soren":  newRedactor("", "", "Søren", "Kjærgaard"),
		"-":      nil,
	}
	f, err := os.Open("testdata/redaction_corpus.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var entries, positives, hits, misses, falsePositives int
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		if sc.Text() == "" || strings.HasPrefix(sc.Text(), "#") {
			continue
		}
		cols := strings.Split(sc.Text(), "\t")
		r, known := people[cols[0]]
		if len(cols) != 3 || !known {
			t.Fatalf("line %d: want person<TAB>text<TAB>kept, got %q", line, sc.Text())
		}
		in, want := cols[1], cols[2]
		if want == "=" {
			want = in
		}
		entries++
		got := r.text(in)
		switch {
		case want != in && got == want:
			positives++
			hits++
		case want != in:
			positives++
			misses++
			t.Errorf("line %d miss: %q → %q, want %q", line, in, got, want)
		case got != want:
			falsePositives++
			t.Errorf("line %d false positive: %q → %q", line, in, got)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	t.Logf("corpus: %d texts, %d with identifiers: %d hits, %d misses; %d without: %d false positives",
		entries, positives, hits, misses, entries-positives, falsePositives)
	if entries < 70 {
		t.Errorf("corpus of %d texts: want at least 70", entries)
	}
}
