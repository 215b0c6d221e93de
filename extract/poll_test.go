package extract

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestPoll(t *testing.T) {
	lost := errors.New("job lost")
	tests := []struct {
		name       string
		opts       PollOptions
		doneAt     int   // check number that reports done; 0: never
		failAt     int   // check number that fails; 0: never
		wantErr    error // nil: success
		wantChecks int   // exact; 0: at least 2
	}{
		{"done at once", PollOptions{Initial: time.Millisecond}, 1, 0, nil, 1},
		{"done after 4 checks", PollOptions{Initial: time.Millisecond, Max: 4 * time.Millisecond}, 4, 0, nil, 4},
		{"check error returned as is", PollOptions{Initial: time.Millisecond}, 0, 3, lost, 3},
		{"deadline", PollOptions{Initial: 2 * time.Millisecond, Max: 10 * time.Millisecond, Deadline: 60 * time.Millisecond}, 0, 0, ErrPollDeadline, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checks := 0
			start := time.Now()
			err := Poll(t.Context(), tt.opts, func(context.Context) (bool, error) {
				checks++
				if checks == tt.failAt {
					return false, lost
				}
				return checks == tt.doneAt, nil
			})
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Poll = %v, want %v", err, tt.wantErr)
			}
			if tt.wantChecks > 0 && checks != tt.wantChecks {
				t.Fatalf("%d checks, want %d", checks, tt.wantChecks)
			}
			if tt.wantErr == ErrPollDeadline {
				if checks < 2 {
					t.Fatalf("%d checks before the deadline, want several", checks)
				}
				if d := time.Since(start); d < tt.opts.Deadline {
					t.Fatalf("gave up after %s, before the %s deadline", d, tt.opts.Deadline)
				}
			}
		})
	}
}

func TestPollSpacing(t *testing.T) {
	var at []time.Time
	err := Poll(t.Context(), PollOptions{Initial: 20 * time.Millisecond, Factor: 2}, func(context.Context) (bool, error) {
		at = append(at, time.Now())
		return len(at) == 3, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Waits are at least the interval (20ms, then 40ms): never faster than
	// asked, e.g. finoOS's 2 requests/s at first. Upper bounds would flake.
	if g := at[1].Sub(at[0]); g < 20*time.Millisecond {
		t.Fatalf("first gap %s < 20ms", g)
	}
	if g := at[2].Sub(at[1]); g < 40*time.Millisecond {
		t.Fatalf("second gap %s < 40ms", g)
	}
}

func TestPollCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(30*time.Millisecond, cancel)
	start := time.Now()
	err := Poll(ctx, PollOptions{Initial: time.Minute}, func(context.Context) (bool, error) { return false, nil })
	if err != context.Canceled {
		t.Fatalf("Poll = %v, want ctx.Err()", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("returned %s after cancel", d)
	}
}

func TestPages(t *testing.T) {
	var seen []int
	err := Pages(t.Context(), 0, func(_ context.Context, page int) (bool, error) {
		seen = append(seen, page)
		return page < 2, nil
	})
	if err != nil || len(seen) != 3 || seen[0] != 0 || seen[2] != 2 {
		t.Fatalf("Pages = %v, pages %v; want 0,1,2", err, seen)
	}

	boom := errors.New("boom")
	err = Pages(t.Context(), 1, func(_ context.Context, page int) (bool, error) {
		if page == 3 {
			return false, boom
		}
		return true, nil
	})
	if !errors.Is(err, boom) || err.Error() != "page 3: boom" {
		t.Fatalf("Pages = %v, want page 3: boom", err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	calls := 0
	err = Pages(ctx, 1, func(context.Context, int) (bool, error) {
		calls++
		cancel()
		return true, nil
	})
	if !errors.Is(err, context.Canceled) || calls != 1 {
		t.Fatalf("Pages after cancel = %v after %d calls", err, calls)
	}
}

func TestWakes(t *testing.T) {
	var w Wakes
	if w.Ready("j") {
		t.Error("Ready reported a run polling a job nobody waits for")
	}
	wake := w.Wait("j")
	// Two wakes before the run looks: one is kept, the second does not block.
	if !w.Ready("j") || !w.Ready("j") {
		t.Fatal("Ready did not find the waiting run")
	}
	select {
	case <-wake:
	default:
		t.Fatal("not woken")
	}
	select {
	case <-wake:
		t.Fatal("woken twice")
	default:
	}
	w.Unwait("j")
	if w.Ready("j") {
		t.Error("Ready after Unwait")
	}
}
