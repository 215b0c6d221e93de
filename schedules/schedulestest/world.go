// Package schedulestest is the world the end-to-end tests share, those of
// each provider (extract/<provider>) and those of the runner and daemon
// (schedules): a private ClickHouse database with its loader and state,
// and a runner whose clock the test sets. Each provider's tests add their
// sandbox and client to it.
package schedulestest

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/load/clickhouse/chtest"
	"github.com/finsync/finsync/schedules"
)

// World is a private database (chtest.NewDB: migrated, dropped when the
// test ends), a loader and state over it, and a runner on the World's clock.
type World struct {
	DB     *clickhouse.DB
	Loader *clickhouse.Loader
	State  *clickhouse.State
	Runner *schedules.Runner

	mu  sync.Mutex
	now time.Time
}

// NewWorld is a World whose runs start at now; the zero time is the wall
// clock.
func NewWorld(t testing.TB, now time.Time) *World {
	t.Helper()
	return NewLoggedWorld(t, now, nil)
}

// NewLoggedWorld is NewWorld with the loader and the runner logging to log.
func NewLoggedWorld(t testing.TB, now time.Time, log *slog.Logger) *World {
	t.Helper()
	db := chtest.NewDB(t)
	loader := clickhouse.NewLoader(db, clickhouse.LoaderOptions{Logger: log})
	state := clickhouse.NewState(db, loader)
	w := &World{DB: db, Loader: loader, State: state, now: now}
	w.Runner = &schedules.Runner{Loader: loader, State: state, Log: log, Now: w.Now}
	return w
}

// Now is the World's clock: the time last set, or the wall clock's.
func (w *World) Now() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.now.IsZero() {
		return time.Now()
	}
	return w.now
}

// SetNow sets the clock; the zero time is the wall clock again.
func (w *World) SetNow(now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.now = now
}

// Query runs q and returns its rows' first column, which must be a String.
func (w *World) Query(t testing.TB, q string, args ...any) []string {
	t.Helper()
	rows, err := w.DB.Conn().Query(context.Background(), q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// AddSubjects registers subjects.
func (w *World) AddSubjects(t testing.TB, subs ...extract.Subject) {
	t.Helper()
	if err := w.State.AddSubjects(context.Background(), subs); err != nil {
		t.Fatal(err)
	}
}

// Run runs the stream once for tenant; an error ends the test.
func (w *World) Run(t testing.TB, s extract.Stream, tenant string) clickhouse.Run {
	t.Helper()
	run, err := w.Runner.Run(context.Background(), s, tenant)
	if err != nil {
		t.Fatalf("%s/%s: %v", s.Name, tenant, err)
	}
	return run
}

// RunAll runs every stream for every tenant, stream by stream.
func (w *World) RunAll(t testing.TB, streams []extract.Stream, tenants []string) []clickhouse.Run {
	t.Helper()
	var runs []clickhouse.Run
	for _, s := range streams {
		for _, tenant := range tenants {
			runs = append(runs, w.Run(t, s, tenant))
		}
	}
	return runs
}
