package schedules_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/finsync/finsync/schedules"
	"github.com/finsync/finsync/schedules/schedulestest"
)

// Replicas record their shard in ClickHouse, and each finds what is wrong
// with the split: a shard no one runs, a replica counting differently, one
// more replica than the count, another replica with its own shard.
func TestReplicasCheckTheirSplit(t *testing.T) {
	ctx := context.Background()
	now := time.Now().Truncate(time.Second)
	const stale = 3 * time.Minute
	longAgo, justNow := now.Add(-time.Hour), now.Add(-time.Minute)
	tests := []struct {
		name    string
		beats   map[string]time.Time // FINSYNC_SHARD → when it last beat
		self    string
		started time.Time
		want    []string // each a part of one problem, in order
	}{
		{"every shard alive", map[string]time.Time{"1/3": justNow, "2/3": justNow}, "0/3", longAgo, nil},
		{"a shard silent", map[string]time.Time{"1/3": justNow, "2/3": now.Add(-10 * time.Minute)}, "0/3", longAgo,
			[]string{"no daemon has run shard 2/3 for 3m0s"}},
		{"a shard never seen", map[string]time.Time{"1/3": justNow}, "0/3", longAgo, []string{"no daemon has run shard 2/3"}},
		{"a shard not seen yet, just after the start", map[string]time.Time{"1/3": justNow}, "0/3", justNow, nil},
		{"scaled down to 2 replicas of 3", map[string]time.Time{"0/3": justNow}, "1/3", longAgo, []string{"no daemon has run shard 2/3"}},
		{"scaled up: 1/2 counts 3", map[string]time.Time{"1/3": justNow}, "0/2", longAgo,
			[]string{"shard 1 runs with FINSYNC_SHARD 1/3, this one with 0/2"}},
		{"a third replica", map[string]time.Time{"1/2": justNow, "2/3": justNow}, "0/2", longAgo,
			[]string{"a daemon runs shard 2/3 while this one counts 2 shards"}},
		{"two replicas run 0/2", map[string]time.Time{"0/2": justNow, "1/2": justNow}, "0/2", longAgo,
			[]string{"two replicas run shard 0/2 (this one and host other-host pid 7)"}},
		{"its predecessor's beat, before a restart", map[string]time.Time{"0/2": now.Add(-2 * time.Minute), "1/2": justNow}, "0/2", now.Add(-90 * time.Second), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := schedulestest.NewWorld(t, time.Time{})
			other := schedules.Owner{Host: "other-host", PID: 7, ID: "other"}
			for spec, at := range tc.beats {
				sh, err := schedules.ParseShard(spec)
				if err != nil {
					t.Fatal(err)
				}
				if err := sh.Beat(ctx, w.State, other, at); err != nil {
					t.Fatal(err)
				}
			}
			// This replica beat a minute ago; what it finds now, before its
			// next beat, is the other replicas' since.
			self, _ := schedules.ParseShard(tc.self)
			me := schedules.NewOwner()
			if _, ok := tc.beats[tc.self]; !ok {
				if err := self.Beat(ctx, w.State, me, justNow); err != nil {
					t.Fatal(err)
				}
			}
			got, err := self.Check(ctx, w.State, me, tc.started, now, stale)
			if err != nil {
				t.Fatal(err)
			}
			ok := len(got) == len(tc.want)
			for i := 0; ok && i < len(got); i++ {
				ok = strings.Contains(got[i], tc.want[i])
			}
			if !ok {
				t.Errorf("problems %q, want %q", got, tc.want)
			}
		})
	}
}
