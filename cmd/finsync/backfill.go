package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/schedules"
)

// runBackfill is `finsync backfill -stream S -from D -to D`: the range in
// windows, oldest first, each checkpointed once loaded, so that the same
// command after an interruption resumes after the last window done.
func runBackfill(ctx context.Context, a *app, args []string) error {
	var stream, tenant, from, to string
	var window time.Duration
	err := a.flags("backfill", summaryOf("backfill"), args, func(fs *flag.FlagSet) {
		fs.StringVar(&stream, "stream", "", "the stream to backfill (one that reads windows, e.g. fino.transactions)")
		fs.StringVar(&from, "from", "", "first day, YYYY-MM-DD")
		fs.StringVar(&to, "to", "", "last day, YYYY-MM-DD (included)")
		fs.StringVar(&tenant, "tenant", "", "backfill this tenant only (default: every configured tenant)")
		fs.Func("window", "window size, e.g. 7d or 168h (default: the stream's window in the schedules file)", func(v string) error {
			d, err := schedules.ParseDuration(v)
			window = d
			return err
		})
	})
	if err != nil {
		return err
	}
	first, err1 := time.Parse(time.DateOnly, from)
	last, err2 := time.Parse(time.DateOnly, to)
	if stream == "" || err1 != nil || err2 != nil || last.Before(first) {
		fmt.Fprintln(a.stderr, "finsync backfill: -stream, -from and -to (YYYY-MM-DD, -from ≤ -to) are required")
		return errUsage
	}
	c, db, _, err := a.migrated(ctx, "backfill", nil)
	if err != nil {
		return err
	}
	defer db.Close()
	logs := &barLogs{out: a.stderr}
	log := newLogger(logs, isTerminal(a.stderr), c)
	ps := providers(c, log, nil)
	p, s, ok := findStream(ps, stream)
	switch {
	case !ok:
		return unknownStream(ps, stream)
	case !p.Configured:
		return fmt.Errorf("%s is not configured: set FINSYNC_%s_BASE_URL and its credentials", p.Name, strings.ToUpper(p.Name))
	case !s.Backfill:
		return fmt.Errorf("%s reads snapshots, not windows: it has nothing to backfill (run it with finsync once)", stream)
	case tenant != "" && !slices.Contains(p.Tenants, tenant):
		return fmt.Errorf("%s has no tenant %q; its tenants: %s", p.Name, tenant, strings.Join(p.Tenants, ", "))
	}
	if window <= 0 {
		sched, _ := c.schedule(stream)
		window = max(sched.Window, 24*time.Hour)
	}
	window = window.Truncate(24 * time.Hour)
	if window <= 0 {
		return fmt.Errorf("-window must be at least one day")
	}
	windows := split(first, last.AddDate(0, 0, 1), window)
	loader := clickhouse.NewLoader(db, c.loaderOptions(log))
	state := clickhouse.NewState(db, loader)
	if subs := configSubjects(p); len(subs) > 0 {
		if err := state.AddSubjects(ctx, subs); err != nil {
			return err
		}
	}
	runner := &schedules.Runner{Loader: loader, State: state, Log: log, Shard: c.shard(), Owner: schedules.NewOwner()}
	var bar *progress
	runner.Progress = func(n int64) { bar.read(n) } // set before each tenant's first window
	abandonStale(ctx, c, runner, stream)
	// The checkpoint is per first day only: extending -to or changing
	// -window carries on after what is loaded instead of starting over.
	key := "backfill:" + from
	if sh := c.shard(); !sh.All() {
		key += "@" + sh.String() // each shard backfills its own subjects
	}
	for _, t := range p.Tenants {
		if tenant != "" && t != tenant {
			continue
		}
		// The checkpoint is the end of the last window loaded.
		done, err := state.Checkpoint(ctx, stream, t, key)
		if err != nil {
			return err
		}
		start := 0
		for start < len(windows) && windows[start].To.Format(time.DateOnly) <= done {
			start++
		}
		if start == len(windows) {
			fmt.Fprintf(a.stdout, "%s %s: %s..%s is loaded already: nothing to do\n", stream, t, from, to)
			continue
		}
		bar = newProgress(a.stdout, isTerminal(a.stdout), stream+" "+t, len(windows), start)
		logs.bar = bar
		for _, w := range windows[start:] {
			run, err := runner.RunWindow(ctx, s, t, w)
			if err == nil {
				err = state.SetCheckpoint(ctx, stream, t, key, w.To.Format(time.DateOnly))
			}
			if err != nil {
				bar.stop()
				return fmt.Errorf("window %s: %w (run the same command again to resume)", windowText(w), err)
			}
			var rows uint64
			for _, n := range run.Rows {
				rows += n
			}
			bar.window(w, rows)
		}
		bar.stop()
		logs.bar = nil
	}
	return nil
}

// barLogs writes log lines above a progress bar drawn on the terminal
// (clear the bar's line, write, draw the bar again) instead of onto it.
type barLogs struct {
	out io.Writer
	bar *progress // nil or not drawn on a terminal: written as they come
}

func (l *barLogs) Write(p []byte) (int, error) {
	bar := l.bar
	if bar == nil || !bar.tty {
		return l.out.Write(p)
	}
	bar.mu.Lock()
	defer bar.mu.Unlock()
	fmt.Fprint(bar.out, "\r\033[K")
	n, err := l.out.Write(p)
	bar.draw("")
	return n, err
}

// split cuts [from, to) into windows of size d, the last one shorter.
func split(from, to time.Time, d time.Duration) []extract.Window {
	var out []extract.Window
	for f := from; f.Before(to); f = f.Add(d) {
		out = append(out, extract.Window{From: f, To: minTime(f.Add(d), to)})
	}
	return out
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func windowText(w extract.Window) string {
	return w.From.Format(time.DateOnly) + ".." + w.To.AddDate(0, 0, -1).Format(time.DateOnly)
}

// progress shows a backfill's progress: a bar redrawn in place on a
// terminal, moving with the records read inside a window too; one line per
// window otherwise (logs, CI). Records are counted from the run's
// goroutines, log lines written from any: mu guards the rest.
type progress struct {
	out         io.Writer
	tty         bool
	name        string
	start       time.Time
	mu          sync.Mutex
	total, done int
	skipped     int    // windows done by an earlier, interrupted backfill
	rows        uint64 // loaded by the windows done
	reading     int64  // records read so far in the window in flight
	drawn       time.Time
}

func newProgress(out io.Writer, tty bool, name string, total, done int) *progress {
	p := &progress{out: out, tty: tty, name: name, total: total, done: done, skipped: done, start: time.Now()}
	if done > 0 {
		fmt.Fprintf(out, "%s: resuming after %d of %d windows already loaded\n", name, done, total)
	}
	if tty {
		p.draw("")
	}
	return p
}

// read counts records of the window in flight (Runner.Progress); the bar
// is redrawn for a window's first records, then at most ten times a second.
func (p *progress) read(records int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	first := p.reading == 0
	p.reading += records
	if p.tty && (first || time.Since(p.drawn) >= 100*time.Millisecond) {
		p.draw("")
	}
}

func (p *progress) window(w extract.Window, rows uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done++
	p.rows += rows
	p.reading = 0
	if p.tty {
		p.draw("")
		return
	}
	fmt.Fprintf(p.out, "%s: window %d/%d %s loaded, %d rows%s\n", p.name, p.done, p.total, windowText(w), rows, p.rate())
}

// rate is the throughput so far and the time left, estimated from the
// windows this process loaded.
func (p *progress) rate() string {
	elapsed := time.Since(p.start)
	ran := p.done - p.skipped
	if ran == 0 || elapsed <= 0 {
		return ""
	}
	eta := time.Duration(float64(elapsed) / float64(ran) * float64(p.total-p.done)).Round(time.Second)
	return fmt.Sprintf(" (total %d rows, %.0f rows/s, ETA %s)", p.rows, float64(p.rows)/elapsed.Seconds(), eta)
}

// draw writes the bar over the current line; the caller holds mu. The
// window in flight fills its share of the bar as its records come, up to
// half of it: how many a window holds is not known before it ends.
func (p *progress) draw(suffix string) {
	const width = 30
	cells := float64(p.done)
	inFlight := ""
	if p.reading > 0 && p.done < p.total {
		cells += 0.5 * float64(p.reading) / float64(p.reading+1000)
		inFlight = fmt.Sprintf(", window %d: %d records read", p.done+1, p.reading)
	}
	filled := min(width, int(width*cells/float64(max(p.total, 1))))
	fmt.Fprintf(p.out, "\r%s [%s%s] %d/%d windows%s%s%s\033[K", p.name, strings.Repeat("█", filled), strings.Repeat("·", width-filled),
		p.done, p.total, inFlight, p.rate(), suffix)
	p.drawn = time.Now()
}

func (p *progress) stop() {
	if p.tty {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.draw("\n")
	}
}
