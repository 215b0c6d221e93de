package schedules_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/schedules/schedulestest"
	"github.com/finsync/finsync/transform"
)

// A per-subject run that runs out of time loads the subjects it read and
// ends partial; the next run reads the others only, over the first run's
// window, and moves the cursor; the run after that reads everybody again.
func TestARunOutOfTimeIsResumed(t *testing.T) {
	w := schedulestest.NewWorld(t, time.Time{})
	ids := []string{"u1", "u2", "u3", "u4", "u5"}
	for _, id := range ids {
		w.AddSubjects(t, extract.Subject{Provider: "test", Tenant: "t1", Kind: "user", ID: id, Source: clickhouse.SourceConfig})
	}
	var stuck atomic.Bool // u3 answers only when the run ends
	var mu sync.Mutex
	var asked []string
	var windows []time.Time
	s := extract.Stream{Name: "test.users", Provider: "test", SubjectKind: "user", Tables: []transform.Table{transform.Accounts},
		Run: func(ctx context.Context, req extract.Request, out extract.Output) (string, error) {
			mu.Lock()
			windows = append(windows, req.Window.To)
			mu.Unlock()
			return "to " + req.Window.To.Format(time.RFC3339), extract.Fan(ctx, req.Subjects, req.Registry, 1, out, func() int { return 0 },
				func(ctx context.Context, _ int, sub extract.Subject, out extract.Output) error {
					mu.Lock()
					asked = append(asked, sub.ID)
					mu.Unlock()
					if sub.ID == "u3" && stuck.Load() {
						<-ctx.Done()
						return ctx.Err()
					}
					return writeAccount(out, req, sub.ID)
				},
				func(int, extract.Output) error { return nil })
		}}
	loaded := func() string {
		return strings.Join(w.Query(t, "SELECT account_id FROM accounts FINAL WHERE tenant = 't1' ORDER BY account_id"), ",")
	}
	run := func(timeout time.Duration) (clickhouse.Run, []string) {
		t.Helper()
		mu.Lock()
		asked = nil
		mu.Unlock()
		ctx, cancel := context.WithTimeout(t.Context(), timeout)
		defer cancel()
		row, _ := w.Runner.Run(ctx, s, "t1")
		mu.Lock()
		defer mu.Unlock()
		return row, slices.Clone(asked)
	}

	stuck.Store(true)
	first, asked1 := run(2 * time.Second)
	if first.Status != clickhouse.RunPartial || !strings.Contains(first.Error, "timeout came before") {
		t.Fatalf("run out of time: %s %q, want partial naming the timeout", first.Status, first.Error)
	}
	if got := loaded(); got != "u1,u2" || strings.Join(asked1, ",") != "u1,u2,u3" {
		t.Fatalf("run out of time: asked %v, loaded %s; want u1,u2,u3 asked, u1,u2 loaded", asked1, got)
	}

	stuck.Store(false)
	time.Sleep(1100 * time.Millisecond) // a later window end, were it not resumed
	second, asked2 := run(time.Minute)
	if second.Status != clickhouse.RunSuccess || !strings.Contains(second.Error, "finished the window of an unfinished run") {
		t.Fatalf("resumed run: %s %q", second.Status, second.Error)
	}
	if strings.Join(asked2, ",") != "u3,u4,u5" || loaded() != "u1,u2,u3,u4,u5" {
		t.Errorf("resumed run asked %v, loaded %s; want u3,u4,u5 asked, all loaded", asked2, loaded())
	}
	if !second.WindowTo.Equal(first.WindowTo) || !windows[1].Equal(windows[0]) {
		t.Errorf("resumed run's window ends %s (stream saw %s), the first's %s", second.WindowTo, windows[1], first.WindowTo)
	}
	cursor, err := w.State.Cursor(t.Context(), s.Name, "t1")
	if want := "to " + first.WindowTo.UTC().Format(time.RFC3339); err != nil || cursor != want {
		t.Errorf("cursor %q (%v), want %q", cursor, err, want)
	}

	third, asked3 := run(time.Minute)
	if third.Status != clickhouse.RunSuccess || strings.Join(asked3, ",") != strings.Join(ids, ",") || !third.WindowTo.After(first.WindowTo) {
		t.Errorf("next run: %s %q, asked %v, window to %s; want success over a new window with everybody", third.Status, third.Error, asked3, third.WindowTo)
	}
}
