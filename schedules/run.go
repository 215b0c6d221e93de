// Package schedules runs streams: one run of one stream for one tenant
// (Runner: extract, load, then checkpoint), the daemon that starts runs on
// the schedules file's cron specs and on webhooks (Daemon), and its
// metrics.
package schedules

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
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
	// QuarantineGrace is how long a subject the provider did not know
	// (extract.Registry.Gone) stays quarantined before the same answer
	// deletes its rows; 0 means 24 hours.
	QuarantineGrace time.Duration
	// Progress, if set, is told the records a stream hands over as it
	// hands them, before they are loaded: a backfill's bar moves within a
	// window. Runs call it from their own goroutines.
	Progress func(records int64)
	// Owner is this process in the leases its runs hold (NewOwner, once
	// per process); the zero Owner is this host and pid, which all the
	// process's Runners share.
	Owner Owner
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

// RunScheduled is Run as tenant's schedule says (sched is the stream's
// For the tenant): its lookback (0: the provider's) and params. A
// triggered run (a provider's webhook or callback asked for it,
// extract.Request.Triggered) collects what is pending and starts nothing
// new at the provider.
func (r *Runner) RunScheduled(ctx context.Context, s extract.Stream, tenant string, sched Schedule, triggered bool) (clickhouse.Run, error) {
	return r.run(ctx, s, tenant, runOptions{lookback: sched.Lookback, params: sched.Params, triggered: triggered})
}

// RunReconcile is RunScheduled as a reconciliation (the schedule's
// reconcile): the stream skips nothing for lack of news and reads its
// reconciliation window (extract.Request.Reconcile, the schedule's
// reconcile_lookback), under the same lease as any run of it, and loads
// idempotently. The run counts the rows it loaded whose natural key its
// tables did not hold before, the rows incremental runs had missed
// (Run.Missed): noted in etl_runs.error and logged at WARN when any.
func (r *Runner) RunReconcile(ctx context.Context, s extract.Stream, tenant string, sched Schedule) (clickhouse.Run, error) {
	if !s.Reconciles {
		return clickhouse.Run{Stream: s.Name, Tenant: tenant}, fmt.Errorf("%s is not incremental (it reads everything each run): nothing to reconcile", s.Name)
	}
	return r.run(ctx, s, tenant, runOptions{lookback: sched.Lookback, params: sched.Params, reconcile: true,
		reconcileLookback: sched.ReconcileLookback})
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
	params    map[string]string // the schedule's, for Request.Params
	triggered bool
	// reconcile: a reconciliation (RunReconcile) over reconcileLookback.
	reconcile         bool
	reconcileLookback time.Duration
}

func (r *Runner) run(ctx context.Context, s extract.Stream, tenant string, o runOptions) (clickhouse.Run, error) {
	ctx, run, err := r.begin(ctx, s, tenant, o)
	if err != nil || run.row.Status == RunOtherShard || run.row.Status == RunNotStarted {
		return run.row, err
	}
	defer run.release()
	req, err := run.request(ctx)
	if err == nil && o.reconcile {
		// Under the lease: no other run of the stream loads meanwhile.
		run.keys, err = run.countKeys(ctx)
	}
	var next string
	if err == nil {
		attrs := []any{"cursor", req.Cursor, "subjects", len(req.Subjects),
			"window", windowText(req.Window, run.backfill), "triggered", req.Triggered, "reconcile", req.Reconcile}
		if run.resumed != nil {
			attrs = append(attrs, "resumes_window_to", run.resumed.To, "subjects_loaded_before", len(run.resumed.Read))
		}
		run.log.InfoContext(ctx, "run started", attrs...)
		xctx, cancel := extraction(ctx)
		next, err = runStream(xctx, s, req, run.out)
		cancel()
		if err != nil && errors.Is(xctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
			// Out of time, not failed: what was read loads, the next run
			// resumes after it.
			err = &extract.RetryAfter{Err: fmt.Errorf("the run's timeout came before the stream was read to the end: %w", err)}
		}
	}
	return run.finish(ctx, req.Cursor, next, err)
}

// extraction is the part of ctx's time the stream gets: all but a tenth
// (at most a minute), kept to load and record what it read, so a run that
// runs out of time still loads it and the next resumes after it.
func extraction(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	return context.WithDeadline(ctx, deadline.Add(-min(time.Until(deadline)/10, time.Minute)))
}

// runBook is one run's bookkeeping: its etl_runs row and heartbeat, the
// cursor, registry subjects and async jobs it starts from, what it hands
// the stream (the Output and the parts the stream declared), and what it
// writes once the stream returned. Runner.run is begin, request, the
// stream, finish.
type runBook struct {
	r        *Runner
	stream   extract.Stream
	tenant   string
	opts     runOptions
	log      *slog.Logger
	now      func() time.Time
	backfill bool // a window of its own: the cursor is neither read nor moved
	// ownsTenant says this shard does the tenant's share of the stream's
	// work that is not per subject (its async jobs).
	ownsTenant bool
	row        clickhouse.Run // the etl_runs row
	lease      *lease         // held from begin to the end of finish
	stopBeat   func()
	before     extract.ClientStats // the provider client's counters at the start
	lineage    transform.Lineage

	subjects    []extract.Subject // this shard's, of a per-subject stream
	subjectsErr error
	// What the run hands the stream: out always, the parts only if the
	// stream declared them (request).
	out    *sink
	reg    *subjectLog
	jobs   *jobLog
	ledger *ledger // nil without Reads
	// keys are a reconciliation's natural keys per table before it loaded.
	keys map[string]uint64
	// resumed is the resume point of the unfinished run this one goes on
	// with, nil if it starts afresh.
	resumed *resumePoint
}

// begin starts a run of s for tenant: it reads the subjects of a
// per-subject stream, leaves another shard's work alone (a row of status
// RunOtherShard, not recorded), takes the lease of s for tenant (or
// returns a row of status RunNotStarted, not recorded, and a *Busy
// error), records the running row and keeps both beating. The context it
// returns carries the run's id for the log.
func (r *Runner) begin(ctx context.Context, s extract.Stream, tenant string, o runOptions) (context.Context, *runBook, error) {
	run := &runBook{r: r, stream: s, tenant: tenant, opts: o, log: r.Log, now: r.Now}
	if run.now == nil {
		run.now = time.Now
	}
	if run.log == nil {
		run.log = slog.New(slog.DiscardHandler)
	}
	// The run's own clock keeps sub-second precision (duration_ms); what
	// lands in DateTime columns is whole seconds.
	started := run.now().UTC()
	start := started.Truncate(time.Second)
	window := o.window
	run.backfill = !window.To.IsZero()
	if !run.backfill {
		window.To = start
	}
	// With FINSYNC_SHARD, a tenant-level stream runs on one shard; a
	// per-subject stream runs on every shard with that shard's subjects, and
	// its async jobs go to one shard, so no provider job is created twice.
	run.ownsTenant = r.Shard.OwnsTenant(s.Name, tenant)
	var known map[string]extract.Subject
	if s.SubjectKind != "" {
		run.subjects, known, run.subjectsErr = run.readSubjects(ctx)
	}
	if !run.ownsTenant && (s.SubjectKind == "" || (run.subjectsErr == nil && len(run.subjects) == 0)) {
		run.row = clickhouse.Run{Stream: s.Name, Tenant: tenant, Status: RunOtherShard, StartedAt: started,
			Error: "another shard's work (this is shard " + r.Shard.String() + ")"}
		return ctx, run, nil
	}
	var err error
	run.lease, err = r.acquire(ctx, s.Name, tenant, leaseBeats*beatEvery(ctx))
	if err != nil {
		run.row = clickhouse.Run{Stream: s.Name, Tenant: tenant, Status: RunNotStarted, StartedAt: started, Error: err.Error()}
		return ctx, run, err
	}
	// Under the lease: the run an earlier one left unfinished goes on.
	extractedAt := start
	if run.resumes() && run.subjectsErr == nil {
		var p *resumePoint
		if p, run.subjectsErr = run.readResume(ctx); p != nil {
			run.resume(p, &window, &extractedAt)
		}
	}
	run.row = clickhouse.Run{Stream: s.Name, ID: newRunID(start), Tenant: tenant, Status: clickhouse.RunRunning,
		StartedAt: started, WindowFrom: window.From, WindowTo: window.To, Reconcile: o.reconcile}
	if o.reconcile {
		run.row.ID += clickhouse.ReconcileSuffix
	}
	// Every log line of the run, the extractors' included, carries its id.
	ctx = WithRun(ctx, s.Name, tenant, run.row.ID)
	if err := r.State.RecordRun(ctx, run.row); err != nil {
		return ctx, run, errors.Join(err, run.lease.release(ctx))
	}
	run.stopBeat = run.heartbeat(ctx)
	if s.Stats != nil {
		run.before = s.Stats()
	}
	run.lineage = transform.Lineage{Provider: s.Provider, Tenant: tenant, RunID: run.row.ID, ExtractedAt: extractedAt, Version: r.State.Version()}
	run.out = newSink(ctx, r.Loader, s.Name, run.lineage)
	run.out.progress = r.Progress
	run.reg = &subjectLog{stream: s.Name, known: known, grace: cmp.Or(r.QuarantineGrace, 24*time.Hour), now: run.now}
	for _, sub := range run.subjects {
		if sub.Status != extract.SubjectRevoked { // a stream never asks for those
			run.reg.asked++
		}
	}
	run.jobs = &jobLog{state: r.State, stream: s.Name, tenant: tenant}
	if s.Reads != nil {
		run.ledger = newLedger(r.Loader, r.State, s, tenant)
	}
	return ctx, run, nil
}

// request is what the run asks the stream for: its window, cursor,
// subjects and active jobs, and the parts the stream declared. An error
// reading them fails the run before the stream starts.
func (run *runBook) request(ctx context.Context) (extract.Request, error) {
	s, o := run.stream, run.opts
	req := extract.Request{Tenant: run.tenant, Window: extract.Window{From: run.row.WindowFrom, To: run.row.WindowTo},
		Lookback: o.lookback, Params: o.params, Triggered: o.triggered, Lineage: run.lineage,
		Reconcile: o.reconcile, ReconcileLookback: o.reconcileLookback}
	var err error
	switch {
	case run.resumed != nil:
		req.Cursor = run.resumed.Cursor // read under the lease by begin
	case !run.backfill:
		req.Cursor, err = run.cursor(ctx)
	}
	if err == nil {
		req.Subjects, err = run.subjects, run.subjectsErr
	}
	if err == nil && run.ownsTenant && s.Async {
		req.Jobs, err = run.r.State.Jobs(ctx, s.Name, run.tenant, extract.JobActive)
	}
	// The optional parts, for a stream that declares it needs them.
	if s.SubjectKind != "" {
		req.Registry = run.reg
	}
	if s.Async {
		req.JobLog = run.jobs
	}
	if s.Reads != nil {
		req.Ledger = run.ledger
	}
	if s.ReadsOwn {
		req.Own = ownRows{state: run.r.State, stream: s, tenant: run.tenant}
	}
	return req, err
}

// finish ends the run once the stream returned next (its new cursor) and
// err: it loads what the stream handed over, acts on what the stream said
// of subjects and jobs, moves the cursor from cursor to next if the run
// succeeded, and records the final row, which it returns.
func (run *runBook) finish(ctx context.Context, cursor, next string, err error) (clickhouse.Run, error) {
	s, log, row := run.stream, run.log, &run.row
	// Load what was extracted, even when extraction stopped early: it is
	// valid, and loading it twice later is harmless.
	sendErr := run.out.send()
	// What a reconciliation found: counted now that its rows are loaded,
	// before this run deletes any subject's.
	missedNote := ""
	if run.keys != nil && sendErr == nil {
		missed, tables, cerr := run.missed(ctx)
		switch {
		case cerr != nil:
			missedNote = "reconciliation: the rows incremental runs had missed are not counted: " + cerr.Error()
		default:
			row.Missed = missed
			missedNote = fmt.Sprintf("reconciliation: %d row(s) incremental runs had missed (natural keys new to %s)", missed, tables)
			if missed > 0 {
				log.WarnContext(ctx, "reconciliation loaded rows incremental runs had missed", "rows", missed, "tables", tables)
			}
		}
	}
	// What the subjects the provider did not know come to; nothing when
	// the stream stopped early (it may not have asked every subject).
	var lifted []extract.Subject
	row.Quarantined = -1
	if err == nil && s.SubjectKind != "" {
		lifted, err = run.reg.settleGone()
		if err == nil {
			row.Quarantined = run.reg.stillQuarantined()
		}
	}
	// The provider deleted these subjects' data: so does the warehouse, even
	// when extraction stopped early, and whatever the run's context says.
	if ferr := run.forget(context.WithoutCancel(ctx)); ferr != nil {
		sendErr = errors.Join(sendErr, ferr)
	}
	// A run that read a subject before another run found it revoked has
	// just loaded rows of it: they go too, now that they are loaded.
	swept, serr := run.sweep(context.WithoutCancel(ctx))
	if serr != nil {
		sendErr = errors.Join(sendErr, serr)
	}

	stalled, stalledWhy := run.ledger.stalledRecords()
	row.Rows, row.Rejects, row.Retries, row.Stalled = run.out.accepted(), run.out.rejects, uint64(run.out.retries()), stalled
	var inc *extract.Inconsistent
	if errors.As(err, &inc) {
		row.Inconsistent = inc.Check
	}
	if s.Stats != nil {
		row.Retries += uint64(s.Stats().Retries - run.before.Retries)
	}
	if sendErr == nil {
		// Jobs collected and loaded are done only now.
		sendErr = run.jobs.writeDone(context.WithoutCancel(ctx))
	}
	skipped, forgotten := run.reg.skipped, run.reg.forgotten
	switch {
	case sendErr != nil:
		row.Status, row.Error = clickhouse.RunFailed, joinErrors(err, sendErr)
	case err == nil:
		row.Status = clickhouse.RunSuccess
		var notes []string
		if len(forgotten) > 0 {
			notes = append(notes, fmt.Sprintf("deleted the rows of %d subject(s) whose data the provider deleted, see subjects.status_detail; first: %s %s",
				len(forgotten), forgotten[0].ID, forgotten[0].StatusDetail))
		}
		if swept > 0 {
			notes = append(notes, fmt.Sprintf("deleted again the rows of %d revoked subject(s) that a run loaded after their deletion", swept))
		}
		if len(skipped) > 0 {
			notes = append(notes, fmt.Sprintf("skipped %d subject(s), see subjects.status_detail; first: %s %s",
				len(skipped), skipped[0].ID, skipped[0].StatusDetail))
		}
		if q := run.reg.quarantined; len(q) > 0 {
			notes = append(notes, fmt.Sprintf("quarantined %d subject(s) the provider answered for as unknown: their rows stay, and go only if "+
				"it still does not know them %s from now (finsync reactivate lifts it); first: %s %s", len(q), run.reg.grace, q[0].ID, q[0].StatusDetail))
		}
		if len(lifted) > 0 {
			notes = append(notes, fmt.Sprintf("lifted the quarantine of %d subject(s) that answered again", len(lifted)))
		}
		if p := run.resumed; p != nil {
			notes = append(notes, fmt.Sprintf("finished the window of an unfinished run (to %s): the %d subject(s) it had loaded were not read again",
				p.To.UTC().Format(time.RFC3339), len(p.Read)))
		}
		row.Error = strings.Join(notes, "; ")
		if next != cursor && !run.backfill {
			if cerr := run.setCursor(ctx, next); cerr != nil {
				row.Status, row.Error = clickhouse.RunFailed, cerr.Error()
			}
		}
	case extract.IsRetryable(err) && !(nothingCameThrough(row, cursor, next) && extract.Unanswered(err)):
		// Partial: some of it came through, the next run resumes. A run
		// the provider answered nothing usable to is an outage: failed.
		row.Status, row.Error = clickhouse.RunPartial, err.Error()
	default:
		row.Status, row.Error = clickhouse.RunFailed, err.Error()
	}
	if run.resumes() && sendErr == nil {
		if rerr := run.leaveResume(context.WithoutCancel(ctx), cursor); rerr != nil {
			log.WarnContext(ctx, "resume point not recorded: the next run reads every subject again", "err", rerr)
		}
	}
	if stalled > 0 {
		row.Error = strings.TrimPrefix(row.Error+"; "+stalledWhy, "; ")
	}
	if missedNote != "" && row.Status != clickhouse.RunFailed {
		row.Error = strings.TrimSuffix(missedNote+"; "+row.Error, "; ")
	}
	if rows := slices.Concat(skipped, run.reg.quarantined, lifted); len(rows) > 0 {
		if serr := run.r.State.AddSubjects(context.WithoutCancel(ctx), rows); serr != nil {
			log.WarnContext(ctx, "recording skipped and quarantined subjects", "err", serr)
		}
	}
	for _, q := range run.reg.quarantined {
		log.WarnContext(ctx, "subject quarantined: the provider answered as if it did not know it", "subject", q.ID, "detail", q.StatusDetail)
	}
	row.FinishedAt = run.now().UTC()
	run.stopBeat() // before the final row, which must be the newest
	// The run row must land even when ctx ended the run.
	recordErr := run.r.State.RecordRun(context.WithoutCancel(ctx), *row)
	// Only now: a run taking over must find this one's final row.
	if err := run.lease.release(ctx); err != nil {
		log.WarnContext(ctx, "lease not released", "err", err)
	}
	attrs := []any{"status", row.Status, "rows", row.Rows, "rejects", row.Rejects, "retries", row.Retries,
		"seconds", row.FinishedAt.Sub(row.StartedAt).Round(time.Millisecond).Seconds()}
	if row.Error != "" {
		attrs = append(attrs, "err", row.Error)
	}
	// One line per run, at the level its outcome deserves; the retries it
	// took are counted here, each was logged at debug.
	level := slog.LevelInfo
	switch row.Status {
	case clickhouse.RunFailed:
		level = slog.LevelError
	case clickhouse.RunPartial:
		level = slog.LevelWarn
	}
	log.Log(ctx, level, "run finished", attrs...)
	if row.Status == clickhouse.RunFailed || row.Status == clickhouse.RunPartial {
		return *row, errors.Join(fmt.Errorf("%s %s: %s", s.Name, row.Status, row.Error), recordErr)
	}
	return *row, recordErr
}

// countKeys counts the natural keys of the stream's tables for its
// provider and the run's tenant (State.Keys).
func (run *runBook) countKeys(ctx context.Context) (map[string]uint64, error) {
	keys := map[string]uint64{}
	for _, t := range run.stream.Tables {
		n, err := run.r.State.Keys(ctx, t.Name, run.stream.Provider, run.tenant)
		if err != nil {
			return nil, err
		}
		keys[t.Name] = n
	}
	return keys, nil
}

// missed are the natural keys the stream's tables gained since
// countKeys (the lease kept other runs of the stream out; a subject's
// rows deleted meanwhile make it count fewer), and those tables' names.
func (run *runBook) missed(ctx context.Context) (uint64, string, error) {
	after, err := run.countKeys(context.WithoutCancel(ctx))
	if err != nil {
		return 0, "", err
	}
	var n uint64
	var tables []string
	for _, t := range run.stream.Tables {
		tables = append(tables, t.Name)
		if a, b := after[t.Name], run.keys[t.Name]; a > b {
			n += a - b
		}
	}
	return n, strings.Join(tables, ", "), nil
}

// nothingCameThrough says the run loaded no row, rejected no record and
// did not move its cursor.
func nothingCameThrough(row *clickhouse.Run, cursor, next string) bool {
	var rows uint64
	for _, n := range row.Rows {
		rows += n
	}
	return rows == 0 && row.Rejects == 0 && next == cursor
}

// release frees what the run held for the stream.
func (run *runBook) release() { run.out.release() }

// beatEvery is how often a run beats: every minute, or four times within
// ctx's deadline if that is sooner.
func beatEvery(ctx context.Context) time.Duration {
	every := time.Minute
	if deadline, ok := ctx.Deadline(); ok {
		every = max(min(every, time.Until(deadline)/4), 10*time.Millisecond)
	}
	return every
}

// heartbeat rewrites the running run's row and renews its lease every
// beatEvery until the returned stop is called: AbandonRuns takes a row
// silent for longer than the stream's timeout for a dead process's, and a
// live run is never that silent; its lease lasts leaseBeats beats.
func (run *runBook) heartbeat(ctx context.Context) (stop func()) {
	beat := run.row // the running row as begin recorded it
	every := beatEvery(ctx)
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
				err := run.r.State.RecordRun(ctx, beat)
				if err == nil {
					err = run.lease.renew(ctx)
				}
				if err != nil && ctx.Err() == nil {
					run.log.WarnContext(ctx, "heartbeat not recorded", "err", err)
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

// DeleteLapsedLeases deletes the lease rows of stream that dead processes
// left a day or more ago, once there are lapsedLeaseRows of them: each
// process start leaves one per stream and tenant, so a process calls it
// once, at start-up, not per run.
func (r *Runner) DeleteLapsedLeases(ctx context.Context, stream string) error {
	n, err := r.State.DeleteLapsedLeases(ctx, stream, time.Now().Add(-lapsedLeaseAge), lapsedLeaseRows)
	if n > 0 && r.Log != nil {
		r.Log.InfoContext(ctx, "lapsed leases deleted", "stream", stream, "claims", n)
	}
	return err
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

// readSubjects reads the stream's subjects of this shard from the
// registry, also returned by id (the run updates their status).
func (run *runBook) readSubjects(ctx context.Context) ([]extract.Subject, map[string]extract.Subject, error) {
	s := run.stream
	rows, err := run.r.State.Subjects(ctx, s.Provider, run.tenant, s.SubjectKind)
	if err != nil {
		return nil, nil, err
	}
	var out []extract.Subject
	byID := make(map[string]extract.Subject, len(rows))
	for _, row := range rows {
		if !run.r.Shard.OwnsSubject(row.Provider, row.Tenant, row.ID) {
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
func (run *runBook) cursorKey() string {
	if run.stream.SubjectKind == "" || run.r.Shard.All() {
		return clickhouse.CursorKey("")
	}
	return clickhouse.CursorKey(run.r.Shard.String())
}

// cursor is the stream's cursor for the run's tenant. A shard's first run
// starts from the unsharded cursor: that run covered every subject up to
// it.
func (run *runBook) cursor(ctx context.Context) (string, error) {
	name, st := run.stream.Name, run.r.State
	key := run.cursorKey()
	c, err := st.Checkpoint(ctx, name, run.tenant, key)
	if err == nil && c == "" && key != clickhouse.CursorKey("") {
		return st.Cursor(ctx, name, run.tenant)
	}
	return c, err
}

// setCursor moves the stream's cursor; only once every record it covers
// was loaded.
func (run *runBook) setCursor(ctx context.Context, cursor string) error {
	return run.r.State.SetCheckpoint(ctx, run.stream.Name, run.tenant, run.cursorKey(), cursor)
}

// forget deletes the rows of every subject the run's stream said the
// provider deleted, then marks each revoked in the registry (a failed
// deletion leaves it as it was: the next run finds it revoked at the
// provider again and retries).
func (run *runBook) forget(ctx context.Context) error {
	st, log := run.r.State, run.log
	var errs []error
	var done []extract.Subject
	var derived []extract.Subject
	for _, row := range run.reg.forgotten {
		del, err := st.DeleteSubjectRows(ctx, row.Provider, row.Tenant, row.ID)
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
	run.reg.forgotten = done
	// The copies (FinGoal's users of the subject) are revoked as well: no
	// stream reads them again.
	if rows := append(append([]extract.Subject{}, done...), derived...); len(rows) > 0 {
		errs = append(errs, st.AddSubjects(ctx, rows))
	}
	return errors.Join(errs...)
}

// sweep deletes the rows of revoked subjects that runs of the stream's
// provider for the tenant (this one, or one racing it) loaded after the
// subjects' deletion:
// a run of one stream reads a subject, another stream's run finds it
// revoked and deletes its rows, then the first loads what it read. Every
// run sweeps once its records are loaded, and the run that revokes sweeps
// after marking the subject revoked, so whichever of two racing runs loads
// last finds the other's rows. It returns how many subjects it cleaned.
func (run *runBook) sweep(ctx context.Context) (int, error) {
	s, st, log := run.stream, run.r.State, run.log
	subs, err := st.RevokedWithRows(ctx, s.Provider, run.tenant, s.Reads != nil)
	if err != nil {
		return 0, err
	}
	var errs []error
	var copies []extract.Subject
	for _, sub := range subs {
		del, err := st.DeleteSubjectRows(ctx, sub.Provider, sub.Tenant, sub.ID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		log.Warn("rows of a revoked subject were loaded after its deletion; deleted again", "stream", s.Name,
			"provider", sub.Provider, "tenant", sub.Tenant, "subject", sub.ID, "tables", del.Tables, "copies", len(del.Derived))
		copies = append(copies, revokedCopies(sub, del.Derived, time.Now().UTC().Format(time.RFC3339))...)
	}
	if len(copies) > 0 {
		errs = append(errs, st.AddSubjects(ctx, copies))
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
