package extract

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"

	"github.com/finsync/finsync/transform"
)

// One subject's faults do not stop the others; many stop them all; any
// other error stops them at once.
func TestFanGoesOnPastASubjectsFaults(t *testing.T) {
	outage := &RetryAfter{Err: &HTTPError{Status: 503, Method: "GET", URL: "/x"}}
	subjects := make([]Subject, 20)
	for i := range subjects {
		subjects[i] = Subject{ID: fmt.Sprint(i)}
	}
	tests := []struct {
		name    string
		fail    func(id string) error
		workers int
		calls   int64  // each called this often
		err     string // "" or a part of the error
		retry   bool
	}{
		{"all read", func(string) error { return nil }, 4, 20, "", false},
		{"one subject's 503s", func(id string) error {
			if id == "3" {
				return outage
			}
			return nil
		}, 4, 20, "1 of 20 subjects not read this run", true},
		{"every subject's 503s", func(string) error { return outage }, 1, 3, "3 of 20 subjects failed: the provider is taken for down", true},
		{"a permanent error", func(id string) error {
			if id == "2" {
				return &Permanent{Err: errors.New("403")}
			}
			return nil
		}, 1, 3, "permanent: 403", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int64
			err := Fan(context.Background(), subjects, nil, tc.workers, discard{}, func() int { return 0 },
				func(_ context.Context, _ int, s Subject, _ Output) error { calls.Add(1); return tc.fail(s.ID) },
				func(int, Output) error { return nil })
			if calls.Load() != tc.calls || (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) || IsRetryable(err) != tc.retry {
				t.Errorf("%d calls, err %v (retryable %v); want %d calls, %q (retryable %v)", calls.Load(), err, IsRetryable(err), tc.calls, tc.err, tc.retry)
			}
			if tc.retry && !Unanswered(err) {
				t.Errorf("the provider's own answer is lost from %v", err)
			}
		})
	}
}

type discard struct{}

func (discard) Records(transform.Table, arrow.Record) error { return nil }
func (discard) Reject(Reject) error                         { return nil }

// Fan tells the registry of each subject it read to the end once the
// worker handed on what it held, and of no subject that failed.
func TestFanTellsTheRegistryWhatItRead(t *testing.T) {
	subjects := make([]Subject, 10)
	for i := range subjects {
		subjects[i] = Subject{ID: fmt.Sprint(i)}
	}
	reg := &readLog{}
	err := Fan(context.Background(), subjects, reg, 3, discard{}, func() int { return 0 },
		func(_ context.Context, _ int, s Subject, _ Output) error {
			if s.ID == "4" {
				return &RetryAfter{Err: errors.New("503")}
			}
			return nil
		},
		func(int, Output) error { return nil })
	if !IsRetryable(err) {
		t.Fatalf("err %v, want retryable", err)
	}
	if got := strings.Join(reg.sorted(), ","); got != "0,1,2,3,5,6,7,8,9" {
		t.Errorf("read %s", got)
	}

	// A worker whose records were not handed on read nothing.
	reg = &readLog{}
	err = Fan(context.Background(), subjects, reg, 1, discard{}, func() int { return 0 },
		func(context.Context, int, Subject, Output) error { return nil },
		func(int, Output) error { return errors.New("loader refused") })
	if err == nil || len(reg.ids) != 0 {
		t.Errorf("err %v, read %v; want the finish's error and nothing read", err, reg.ids)
	}
}

type readLog struct {
	mu  sync.Mutex
	ids []string
}

func (r *readLog) Skip(context.Context, Subject, string) error   { return nil }
func (r *readLog) Forget(context.Context, Subject, string) error { return nil }
func (r *readLog) Gone(context.Context, Subject, string) error   { return nil }
func (r *readLog) Read(s Subject) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ids = append(r.ids, s.ID)
}

func (r *readLog) sorted() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Sorted(slices.Values(r.ids))
}
