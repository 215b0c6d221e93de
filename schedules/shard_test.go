package schedules

import (
	"fmt"
	"testing"
)

func TestParseShard(t *testing.T) {
	for in, want := range map[string]Shard{"": {}, "0/1": {0, 1}, "1/2": {1, 2}, "4/5": {4, 5}} {
		if got, err := ParseShard(in); err != nil || got != want {
			t.Errorf("ParseShard(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"2/2", "-1/2", "1/0", "1", "a/b", "1/2/3"} {
		if _, err := ParseShard(in); err == nil {
			t.Errorf("ParseShard(%q) accepted", in)
		}
	}
}

// Every subject belongs to exactly one of n shards, the shards get about
// equal parts, and the assignment never changes (cursors per shard and
// operators' expectations depend on it).
func TestShardsPartitionSubjects(t *testing.T) {
	const subjects, n = 3000, 3
	per := make([]int, n)
	for i := range subjects {
		owners := 0
		for s := range n {
			if (Shard{s, n}).OwnsSubject("fino", "client", fmt.Sprintf("user-%d", i)) {
				owners++
				per[s]++
			}
		}
		if owners != 1 {
			t.Fatalf("user-%d has %d owners", i, owners)
		}
	}
	for s, k := range per {
		if k < subjects/n*9/10 || k > subjects/n*11/10 {
			t.Errorf("shard %d/%d owns %d of %d subjects", s, n, k, subjects)
		}
	}
	if !(Shard{}).OwnsTenant("x", "y") || !(Shard{0, 1}).OwnsSubject("a", "b", "c") {
		t.Error("the zero Shard and 0/1 must own everything")
	}
	// SHA-256 of "fino\x00client\x00user-1\x00" begins 0970ac60dc9c3798,
	// even: shard 0 of 2 (a change would move every subject's shard and
	// cursor).
	if !(Shard{0, 2}).OwnsSubject("fino", "client", "user-1") {
		t.Error("the shard of a subject changed")
	}
}
