// Package schedules runs streams: one run of one stream for one tenant
// (Runner: extract, load, then checkpoint), the daemon that starts runs on
// the schedules file's cron specs and on webhooks (Daemon), and its
// metrics.
package schedules

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/transform"
)

// Runner runs streams end to end: extract, load, and only then checkpoint.
type Runner struct {
	Loader *clickhouse.Loader
	State  *clickhouse.State
	Log    *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Shard is this process's part of the work (FINSYNC_SHARD); the zero
	// Shard does all of it.
	Shard Shard
}

// RunOtherShard is the status of a run the Runner did not do because its
// work is another shard's; such a run is not recorded in etl_runs.
const RunOtherShard = "other-shard"

// Run runs stream s once for tenant over the window ending now, from the
// stream's cursor, and returns the run row as recorded in etl_runs.
//
// The order is what makes a crash harmless: every record is loaded (Send
// returned) before the cursor moves, and the cursor moves before the run
// row says success. A run killed anywhere re-reads its window next time;
// the reload replaces rows instead of duplicating them.
//
// A provider that keeps refusing (rate limit, outage: extract.RetryAfter)
// ends the run as partial: what was extracted is loaded, the cursor stays,
// and the next run resumes.
func (r *Runner) Run(ctx context.Context, s extract.Stream, tenant string) (clickhouse.Run, error) {
	return r.run(ctx, s, tenant, runOptions{})
}

// RunLookback is Run with the schedule's lookback (0: the provider's).
func (r *Runner) RunLookback(ctx context.Context, s extract.Stream, tenant string, lookback time.Duration) (clickhouse.Run, error) {
	return r.run(ctx, s, tenant, runOptions{lookback: lookback})
}

// RunTriggered is RunLookback for a run a provider's webhook or callback
// asked for (extract.Request.Triggered): it collects what is pending and
// starts nothing new at the provider.
func (r *Runner) RunTriggered(ctx context.Context, s extract.Stream, tenant string, lookback time.Duration) (clickhouse.Run, error) {
	return r.run(ctx, s, tenant, runOptions{lookback: lookback, triggered: true})
}

// RunWindow runs stream s once for tenant over window w (a backfill): the
// stream reads [w.From, w.To) whatever its cursor, and the stream's cursor
// is left alone (the backfill keeps its own checkpoint).
func (r *Runner) RunWindow(ctx context.Context, s extract.Stream, tenant string, w extract.Window) (clickhouse.Run, error) {
	return r.run(ctx, s, tenant, runOptions{window: w})
}

// runOptions say what kind of run it is.
type runOptions struct {
	window    extract.Window // set: a backfill window
	lookback  time.Duration
	triggered bool
}

func (r *Runner) run(ctx context.Context, s extract.Stream, tenant string, o runOptions) (clickhouse.Run, error) {
	window, lookback := o.window, o.lookback
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	log := r.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// The run's own clock keeps sub-second precision (duration_ms); what
	// lands in DateTime columns is whole seconds.
	started := now().UTC()
	start := started.Truncate(time.Second)
	backfill := !window.To.IsZero()
	if !backfill {
		window.To = start
	}
	// With FINSYNC_SHARD, a tenant-level stream runs on one shard; a
	// per-subject stream runs on every shard with that shard's subjects, and
	// its async jobs go to one shard, so no provider job is created twice.
	ownsTenant := r.Shard.OwnsTenant(s.Name, tenant)
	var subjects []extract.Subject
	var registry map[string]extract.Subject
	var subjectsErr error
	if s.SubjectKind != "" {
		subjects, registry, subjectsErr = r.subjects(ctx, s, tenant)
	}
	if !ownsTenant && (s.SubjectKind == "" || (subjectsErr == nil && len(subjects) == 0)) {
		return clickhouse.Run{Stream: s.Name, Tenant: tenant, Status: RunOtherShard, StartedAt: started,
			Error: "another shard's work (this is shard " + r.Shard.String() + ")"}, nil
	}
	run := clickhouse.Run{Stream: s.Name, ID: newRunID(start), Tenant: tenant, Status: clickhouse.RunRunning,
		StartedAt: started, WindowFrom: window.From, WindowTo: window.To}
	// Every log line of the run, the extractors' included, carries its id.
	ctx = WithRun(ctx, s.Name, tenant, run.ID)
	if err := r.State.RecordRun(ctx, run); err != nil {
		return run, err
	}
	stopBeating := r.heartbeat(ctx, log, run)
	var before extract.ClientStats
	if s.Stats != nil {
		before = s.Stats()
	}

	req := extract.Request{Tenant: tenant, Window: window, Lookback: lookback, Triggered: o.triggered,
		Lineage: transform.Lineage{Provider: s.Provider, Tenant: tenant, RunID: run.ID, ExtractedAt: start, Version: r.State.Version()}}
	var cursor string
	var err error
	if !backfill {
		cursor, err = r.cursor(ctx, s, tenant)
	}
	if err == nil {
		req.Subjects, err = subjects, subjectsErr
	}
	if err == nil && ownsTenant && s.Async {
		req.Jobs, err = r.jobs(ctx, s.Name, tenant)
	}
	req.Cursor = cursor
	// The optional parts, for a stream that declares it needs them.
	subjectsLog := &subjectLog{stream: s.Name, known: registry}
	if s.SubjectKind != "" {
		req.Registry = subjectsLog
	}
	jobs := &jobLog{state: r.State, stream: s.Name, tenant: tenant}
	if s.Async {
		req.JobLog = jobs
	}
	var led *ledger
	if s.Reads != nil {
		led = newLedger(r.Loader, r.State, s, tenant)
		req.Ledger = led
	}
	if s.ReadsOwn {
		req.Own = ownRows{state: r.State, stream: s, tenant: tenant}
	}
	var next string
	sink := newSink(ctx, r.Loader, s.Name, req.Lineage)
	defer sink.release()
	if err == nil {
		log.InfoContext(ctx, "run started", "cursor", cursor, "subjects", len(req.Subjects), "window", windowText(window, backfill),
			"triggered", o.triggered)
		next, err = runStream(ctx, s, req, sink)
	}
	// Load what was extracted, even when extraction stopped early: it is
	// valid, and loading it twice later is harmless.
	sendErr := sink.send()
	// The provider deleted these subjects' data: so does the warehouse, even
	// when extraction stopped early, and whatever the run's context says.
	if ferr := r.forget(context.WithoutCancel(ctx), log, subjectsLog); ferr != nil {
		sendErr = errors.Join(sendErr, ferr)
	}
	// A run that read a subject before another run found it revoked has
	// just loaded rows of it: they go too, now that they are loaded.
	swept, serr := r.sweep(context.WithoutCancel(ctx), log, s, tenant)
	if serr != nil {
		sendErr = errors.Join(sendErr, serr)
	}

	stalled, stalledWhy := led.stalledRecords()
	run.Rows, run.Rejects, run.Retries, run.Stalled = sink.accepted(), sink.rejects, uint64(sink.retries()), stalled
	var inc *extract.Inconsistent
	if errors.As(err, &inc) {
		run.Inconsistent = inc.Check
	}
	if s.Stats != nil {
		run.Retries += uint64(s.Stats().Retries - before.Retries)
	}
	if sendErr == nil {
		// Jobs collected and loaded are done only now.
		sendErr = jobs.writeDone(context.WithoutCancel(ctx))
	}
	switch {
	case sendErr != nil:
		run.Status, run.Error = clickhouse.RunFailed, joinErrors(err, sendErr)
	case err == nil:
		run.Status = clickhouse.RunSuccess
		var notes []string
		if len(subjectsLog.forgotten) > 0 {
			notes = append(notes, fmt.Sprintf("deleted the rows of %d subject(s) whose data the provider deleted, see subjects.status_detail; first: %s %s",
				len(subjectsLog.forgotten), subjectsLog.forgotten[0].ID, subjectsLog.forgotten[0].StatusDetail))
		}
		if swept > 0 {
			notes = append(notes, fmt.Sprintf("deleted again the rows of %d revoked subject(s) that a run loaded after their deletion", swept))
		}
		if len(subjectsLog.skipped) > 0 {
			notes = append(notes, fmt.Sprintf("skipped %d subject(s), see subjects.status_detail; first: %s %s",
				len(subjectsLog.skipped), subjectsLog.skipped[0].ID, subjectsLog.skipped[0].StatusDetail))
		}
		run.Error = strings.Join(notes, "; ")
		if next != cursor && !backfill {
			if cerr := r.State.SetCheckpoint(ctx, s.Name, tenant, r.cursorKey(s), next); cerr != nil {
				run.Status, run.Error = clickhouse.RunFailed, cerr.Error()
			}
		}
	case extract.IsRetryable(err):
		run.Status, run.Error = clickhouse.RunPartial, err.Error()
	default:
		run.Status, run.Error = clickhouse.RunFailed, err.Error()
	}
	if stalled > 0 {
		run.Error = strings.TrimPrefix(run.Error+"; "+stalledWhy, "; ")
	}
	if len(subjectsLog.skipped) > 0 {
		if serr := r.State.AddSubjects(context.WithoutCancel(ctx), subjectsLog.skipped); serr != nil {
			log.WarnContext(ctx, "recording skipped subjects", "err", serr)
		}
	}
	run.FinishedAt = now().UTC()
	stopBeating() // before the final row, which must be the newest
	// The run row must land even when ctx ended the run.
	recordErr := r.State.RecordRun(context.WithoutCancel(ctx), run)
	log.InfoContext(ctx, "run finished", "status", run.Status,
		"rows", run.Rows, "rejects", run.Rejects, "retries", run.Retries, "error", run.Error)
	if run.Status == clickhouse.RunFailed || run.Status == clickhouse.RunPartial {
		return run, errors.Join(fmt.Errorf("%s %s: %s", s.Name, run.Status, run.Error), recordErr)
	}
	return run, recordErr
}

// heartbeat rewrites the running run's row every minute, or four times
// within ctx's deadline if that is sooner, until the returned stop is
// called: AbandonRuns takes a row silent for longer than the stream's
// timeout for a dead process's, and a live run is never that silent.
func (r *Runner) heartbeat(ctx context.Context, log *slog.Logger, run clickhouse.Run) (stop func()) {
	every := time.Minute
	if deadline, ok := ctx.Deadline(); ok {
		every = max(min(every, time.Until(deadline)/4), 10*time.Millisecond)
	}
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				if err := r.State.RecordRun(ctx, run); err != nil && ctx.Err() == nil {
					log.WarnContext(ctx, "heartbeat not recorded", "err", err)
				}
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
	}
}

// AbandonStale marks abandoned the runs of stream found `running` with no
// heartbeat for longer than timeout, the longest its runs may take (the
// schedule's timeout): their process died. Start-up and the daemon, when
// it takes a stream's lock, call it.
func (r *Runner) AbandonStale(ctx context.Context, stream string, timeout time.Duration) ([]clickhouse.Run, error) {
	if timeout <= 0 {
		return nil, fmt.Errorf("abandoning runs of %s: no timeout", stream)
	}
	reason := fmt.Sprintf("abandoned: still running after the stream's timeout (%s) without a heartbeat; "+
		"the process running it stopped (killed, crashed or cut off from ClickHouse) before recording its end. "+
		"The rows it loaded stay, and the next run resumes from the stream's last checkpoint", timeout)
	runs, err := r.State.AbandonRuns(ctx, stream, time.Now().Add(-timeout), reason) // heartbeats are wall-clock
	for _, run := range runs {
		if r.Log != nil {
			r.Log.WarnContext(ctx, "run abandoned", "stream", stream, "tenant", run.Tenant, "run", run.ID, "started", run.StartedAt)
		}
	}
	return runs, err
}

func windowText(w extract.Window, backfill bool) string {
	if !backfill {
		return "from the cursor"
	}
	return w.From.UTC().Format(time.DateOnly) + " to " + w.To.UTC().Format(time.DateOnly)
}

// runStream calls the stream, turning a panic into an error: one broken
// extractor fails its run, not the daemon.
func runStream(ctx context.Context, s extract.Stream, req extract.Request, out extract.Output) (next string, err error) {
	defer func() {
		if p := recover(); p != nil {
			next, err = req.Cursor, fmt.Errorf("panic in %s: %v\n%s", s.Name, p, debug.Stack())
		}
	}()
	return s.Run(ctx, req, out)
}

// subjects reads the stream's subjects of this shard from the registry,
// also returned by id (the runner updates their status).
func (r *Runner) subjects(ctx context.Context, s extract.Stream, tenant string) ([]extract.Subject, map[string]extract.Subject, error) {
	rows, err := r.State.Subjects(ctx, s.Provider, tenant, s.SubjectKind)
	if err != nil {
		return nil, nil, err
	}
	var out []extract.Subject
	byID := make(map[string]extract.Subject, len(rows))
	for _, row := range rows {
		if !r.Shard.OwnsSubject(row.Provider, row.Tenant, row.ID) {
			continue
		}
		out = append(out, row)
		byID[row.ID] = row
	}
	return out, byID, nil
}

// cursorKey is where the stream's cursor is kept in etl_state: a
// per-subject stream split over shards keeps one per shard, since each
// shard moves through its own subjects.
func (r *Runner) cursorKey(s extract.Stream) string {
	if s.SubjectKind == "" || r.Shard.All() {
		return clickhouse.CursorKey("")
	}
	return clickhouse.CursorKey(r.Shard.String())
}

// cursor is the stream's cursor for tenant. A shard's first run starts
// from the unsharded cursor: that run covered every subject up to it.
func (r *Runner) cursor(ctx context.Context, s extract.Stream, tenant string) (string, error) {
	key := r.cursorKey(s)
	c, err := r.State.Checkpoint(ctx, s.Name, tenant, key)
	if err == nil && c == "" && key != clickhouse.CursorKey("") {
		return r.State.Cursor(ctx, s.Name, tenant)
	}
	return c, err
}

// jobs reads the stream's active async jobs.
func (r *Runner) jobs(ctx context.Context, stream, tenant string) ([]extract.Job, error) {
	return r.State.Jobs(ctx, stream, tenant, extract.JobActive)
}

// forget deletes the rows of every subject the run's stream said the
// provider deleted, then marks each revoked in the registry (a failed
// deletion leaves it as it was: the next run finds it revoked at the
// provider again and retries).
func (r *Runner) forget(ctx context.Context, log *slog.Logger, subjects *subjectLog) error {
	var errs []error
	var done []extract.Subject
	var derived []extract.Subject
	for _, row := range subjects.forgotten {
		del, err := r.State.DeleteSubjectRows(ctx, row.Provider, row.Tenant, row.ID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		log.InfoContext(ctx, "subject's rows deleted: the provider deleted its data", "provider", row.Provider,
			"subject", row.ID, "reason", row.StatusDetail, "tables", del.Tables, "copies", len(del.Derived))
		at := time.Now().UTC().Format(time.RFC3339)
		row.StatusDetail += fmt.Sprintf("; rows deleted from %d tables at %s", len(del.Tables), at)
		if len(del.Derived) > 0 {
			row.StatusDetail += fmt.Sprintf(", with %d copies at other providers", len(del.Derived))
		}
		done = append(done, row)
		derived = append(derived, revokedCopies(row, del.Derived, at)...)
	}
	subjects.forgotten = done
	// The copies (FinGoal's users of the subject) are revoked as well: no
	// stream reads them again.
	if rows := append(append([]extract.Subject{}, done...), derived...); len(rows) > 0 {
		errs = append(errs, r.State.AddSubjects(ctx, rows))
	}
	return errors.Join(errs...)
}

// sweep deletes the rows of revoked subjects that runs of s's provider for
// tenant (this one, or one racing it) loaded after the subjects' deletion:
// a run of one stream reads a subject, another stream's run finds it
// revoked and deletes its rows, then the first loads what it read. Every
// run sweeps once its records are loaded, and the run that revokes sweeps
// after marking the subject revoked, so whichever of two racing runs loads
// last finds the other's rows. It returns how many subjects it cleaned.
func (r *Runner) sweep(ctx context.Context, log *slog.Logger, s extract.Stream, tenant string) (int, error) {
	subs, err := r.State.RevokedWithRows(ctx, s.Provider, tenant, s.Reads != nil)
	if err != nil {
		return 0, err
	}
	var errs []error
	var copies []extract.Subject
	for _, sub := range subs {
		del, err := r.State.DeleteSubjectRows(ctx, sub.Provider, sub.Tenant, sub.ID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		log.Warn("rows of a revoked subject were loaded after its deletion; deleted again", "stream", s.Name,
			"provider", sub.Provider, "tenant", sub.Tenant, "subject", sub.ID, "tables", del.Tables, "copies", len(del.Derived))
		copies = append(copies, revokedCopies(sub, del.Derived, time.Now().UTC().Format(time.RFC3339))...)
	}
	if len(copies) > 0 {
		errs = append(errs, r.State.AddSubjects(ctx, copies))
	}
	return len(subs), errors.Join(errs...)
}

// revokedCopies are the registry rows that mark the copies of a revoked
// subject revoked too.
func revokedCopies(of extract.Subject, copies []extract.Subject, at string) []extract.Subject {
	out := make([]extract.Subject, len(copies))
	for i, c := range copies {
		c.Status = extract.SubjectRevoked
		c.StatusDetail = fmt.Sprintf("copy of %s/%s/%s, whose data its provider deleted; rows deleted at %s", of.Provider, of.Tenant, of.ID, at)
		out[i] = c
	}
	return out
}

func joinErrors(errs ...error) string {
	return errors.Join(errs...).Error()
}

// newRunID is sortable by start time and unique across daemons.
func newRunID(start time.Time) string {
	b := make([]byte, 4)
	rand.Read(b)
	return start.Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}

// RecordSubject is what a provider's webhook receiver calls with the subject
// a webhook announced: it enters the registry (source webhook) and returns
// once ClickHouse accepted it, so the receiver answers 2xx only then.
func RecordSubject(state *clickhouse.State) func(context.Context, extract.Subject) error {
	return func(ctx context.Context, s extract.Subject) error {
		return state.AddSubjects(ctx, []extract.Subject{{Provider: s.Provider, Tenant: s.Tenant, Kind: s.Kind,
			ID: s.ID, CorrelationID: s.CorrelationID, Source: clickhouse.SourceWebhook}})
	}
}

// JobStatus is what a provider's webhook receiver calls to learn whether an
// async job it was told about is one of stream's for tenant: its status in
// etl_state (extract.JobActive, JobDone, ...), or "" when finsync never
// recorded it.
func JobStatus(state *clickhouse.State) func(ctx context.Context, stream, tenant, id string) (string, error) {
	return state.JobStatus
}

// RecordJob is what a provider's webhook receiver calls with an async job a
// webhook announced (a FinGoal tag-status guid): it is written to etl_state
// as an active job of stream for tenant, for the stream's next run, and
// returns once ClickHouse accepted it.
func RecordJob(state *clickhouse.State) func(ctx context.Context, stream, tenant string, j extract.Job) error {
	return func(ctx context.Context, stream, tenant string, j extract.Job) error {
		return state.PutJob(ctx, stream, tenant, j)
	}
}
