package schedules

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/load/clickhouse"
)

// Job is one scheduled stream: what to run, when, and for which tenants.
// A tenant the schedules file overrides (Schedule.PerTenant) runs on its
// own schedule, with its own timeout, lookback and params; tenants on the
// same cron spec share a tick, and runs of the stream still never overlap.
type Job struct {
	Stream   extract.Stream
	Schedule Schedule
	Tenants  []string
}

// Daemon starts the jobs' runs on their schedules. Runs of one stream never
// overlap (a tick that finds the previous run going is skipped and
// counted), start times are spread by each stream's stable jitter, the
// global and per-provider limits cap the runs in flight, and one stream's
// failure or panic never stops the others.
type Daemon struct {
	Runner *Runner
	// Jobs are what Start schedules; after Start only under mu, and Reload
	// replaces the slice (never its elements: a run in flight keeps the job
	// it started with).
	Jobs        []Job
	Global      int            // runs in flight at once; 0 = unlimited
	PerProvider map[string]int // per provider; 0 or absent = unlimited
	Metrics     *Metrics
	Log         *slog.Logger
	// AfterRuns, if set, runs after each tick's runs of a stream (retention).
	AfterRuns func(ctx context.Context, stream extract.Stream)
	// LastStarts are when each stream's latest run started (etl_runs): Start
	// runs a stream whose schedule says catchup at once when a tick fell
	// between then and now, missed while no daemon ran.
	LastStarts map[string]time.Time
	// SplitEvery is how often a replica whose Runner has a Shard records
	// itself and checks the split with the others' records (Shard.Beat,
	// Shard.Check): default a minute; a shard silent for three is missing.
	SplitEvery time.Duration

	cron   *cron.Cron
	global chan struct{}
	per    map[string]chan struct{}
	// busy has one lock per stream, under mu: no overlap. A stream's lock
	// is never replaced or removed, so a reload cannot let a run of it
	// start while one is going.
	busy map[string]*sync.Mutex
	next map[string]time.Time
	// reload serializes Reload; it guards entries (each stream's cron
	// entries), which Start writes before any Reload.
	reload  sync.Mutex
	entries map[string][]cron.EntryID
	runCtx  context.Context // ends when the grace period of Stop is over
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	// stop is closed when Stop begins: from then on no run starts (Tick,
	// Trigger, the tenant loop and the wait for a concurrency slot check it).
	stop chan struct{}
	mu   sync.Mutex // guards Jobs (after Start), busy, next, queued, stopping, and each busy lock's release
	// queued are the triggered runs asked for while the stream was busy:
	// stream → tenants; they start when its run ends.
	queued   map[string]map[string]bool
	stopping bool     // under mu; wg.Add happens only while it is false
	split    []string // under mu: what is wrong with the replicas' split
}

// Start schedules every enabled job; runs happen until Stop.
func (d *Daemon) Start() {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	d.runCtx, d.cancel = context.WithCancel(context.Background())
	d.busy, d.per, d.next = map[string]*sync.Mutex{}, map[string]chan struct{}{}, map[string]time.Time{}
	d.queued = map[string]map[string]bool{}
	d.stop = make(chan struct{})
	if d.Global > 0 {
		d.global = make(chan struct{}, d.Global)
	}
	for p, n := range d.PerProvider {
		if n > 0 {
			d.per[p] = make(chan struct{}, n)
		}
	}
	d.cron = cron.New(cron.WithLocation(time.UTC))
	d.entries = map[string][]cron.EntryID{}
	for _, j := range d.Jobs {
		d.busy[j.Stream.Name] = &sync.Mutex{}
		d.schedule(j)
	}
	if d.Runner.Owner.ID == "" {
		d.Runner.Owner = NewOwner() // the replicas tell themselves apart by it
	}
	d.cron.Start() // after every field a run reads is set
	if !d.Runner.Shard.All() && d.Runner.State != nil {
		go d.watchSplit()
	}
	now := time.Now()
	for _, j := range d.Jobs {
		last, ok := d.LastStarts[j.Stream.Name]
		if !ok {
			continue
		}
		// The tenants whose schedule had a tick since the stream's last
		// start, in one run of the stream (a second would be skipped).
		catchup := map[string]bool{}
		for _, g := range groups(j) {
			if g.sched.Catchup && g.sched.Next(last).Before(now) {
				for _, t := range g.tenants {
					catchup[t] = true
				}
			}
		}
		if len(catchup) > 0 {
			d.Log.Info("catching up a run missed while no daemon ran", "stream", j.Stream.Name, "last_started", last)
			d.tick(j.Stream.Name, func(t string) bool { return catchup[t] }, true, runScheduled)
		}
	}
}

// watchSplit records this replica's shard and checks the replicas' split
// now and every SplitEvery, until Stop; what is wrong is logged when it
// changes and kept for SplitProblems.
func (d *Daemon) watchSplit() {
	every := cmp.Or(d.SplitEvery, time.Minute)
	started := time.Now()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		ctx, cancel := context.WithTimeout(d.runCtx, every)
		sh, state, owner := d.Runner.Shard, d.Runner.State, d.Runner.Owner
		// Check first: it finds another replica's beat of this shard
		// before this one's covers it.
		problems, err := sh.Check(ctx, state, owner, started, time.Now(), 3*every)
		if err == nil {
			err = sh.Beat(ctx, state, owner, time.Now())
		}
		cancel()
		if err != nil {
			d.Log.Warn("the replicas' split of the work is not checked", "err", err)
		} else {
			d.setSplit(problems)
		}
		select {
		case <-d.stop:
			return
		case <-tick.C:
		}
	}
}

func (d *Daemon) setSplit(problems []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if slices.Equal(d.split, problems) {
		return
	}
	for _, p := range problems {
		d.Log.Error("the replicas do not split the work right", "shard", d.Runner.Shard.String(), "problem", p)
	}
	if len(problems) == 0 {
		d.Log.Info("the replicas split the work right again", "shard", d.Runner.Shard.String())
	}
	d.split = problems
}

// SplitProblems are what is wrong with the replicas' split of the work
// (FINSYNC_SHARD), as last checked; none when the work is not split.
func (d *Daemon) SplitProblems() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.split
}

// Changes are what a Reload changed: the streams added, removed, and
// changed (schedule, tenants or any setting).
type Changes struct {
	Added, Removed, Changed []string
}

// Reload replaces the jobs with jobs (a schedules file read again): the
// cron entries of the streams added, removed or changed are swapped, with
// their next runs; the others keep theirs. Runs in flight go on with the
// job they started with, and a stream's busy lock stays, so a changed
// stream's next run still waits for its previous one. Concurrency limits
// are Start's. It fails once Stop began.
func (d *Daemon) Reload(jobs []Job) (Changes, error) {
	d.reload.Lock()
	defer d.reload.Unlock()
	var ch Changes
	d.mu.Lock()
	if d.stopping || d.cron == nil {
		d.mu.Unlock()
		return ch, errStopping
	}
	old := map[string]Job{}
	for _, j := range d.Jobs {
		old[j.Stream.Name] = j
	}
	// A new slice: runs in flight hold pointers into the old one.
	d.Jobs = slices.Clone(jobs)
	for _, j := range jobs {
		if d.busy[j.Stream.Name] == nil {
			d.busy[j.Stream.Name] = &sync.Mutex{}
		}
	}
	d.mu.Unlock()
	for _, j := range jobs {
		o, ok := old[j.Stream.Name]
		delete(old, j.Stream.Name)
		switch {
		case !ok:
			ch.Added = append(ch.Added, j.Stream.Name)
		case !sameJob(o, j):
			ch.Changed = append(ch.Changed, j.Stream.Name)
			d.unschedule(j.Stream.Name)
		default:
			continue
		}
		d.schedule(j)
	}
	for name := range old {
		ch.Removed = append(ch.Removed, name)
		d.unschedule(name)
	}
	slices.Sort(ch.Removed)
	return ch, nil
}

// sameJob says whether a and b run the same way: where their settings are
// in the file does not matter.
func sameJob(a, b Job) bool {
	norm := func(s Schedule) Schedule {
		s.File, s.Line, s.specLine, s.paramsLine, s.paramLines, s.cron = "", 0, 0, 0, nil, nil
		s.reconcile, s.reconcileLine, s.reconcileAt = nil, 0, ""
		return s
	}
	sa, sb := norm(a.Schedule), norm(b.Schedule)
	sa.PerTenant, sb.PerTenant = nil, nil
	if !slices.Equal(a.Tenants, b.Tenants) || !reflect.DeepEqual(sa, sb) || len(a.Schedule.PerTenant) != len(b.Schedule.PerTenant) {
		return false
	}
	for t, s := range a.Schedule.PerTenant {
		o, ok := b.Schedule.PerTenant[t]
		if !ok || !reflect.DeepEqual(norm(s), norm(o)) {
			return false
		}
	}
	return true
}

// group is the tenants of a job that run on one cron spec, and the
// schedule of the first of them (for the times: the spec, the stream's
// jitter).
type group struct {
	sched   Schedule
	tenants []string
}

// groups are job's enabled tenants by their cron spec.
func groups(j Job) []group {
	var out []group
	for _, t := range j.Tenants {
		s := j.Schedule.For(t)
		if !s.Enabled {
			continue
		}
		i := slices.IndexFunc(out, func(g group) bool { return g.sched.Spec == s.Spec })
		if i < 0 {
			out = append(out, group{sched: s})
			i = len(out) - 1
		}
		out[i].tenants = append(out[i].tenants, t)
	}
	return out
}

// schedule adds j's cron entries, one per group of its tenants, and its
// next run (the reload lock, or Start).
func (d *Daemon) schedule(j Job) {
	for _, g := range groups(j) {
		in := map[string]bool{}
		for _, t := range g.tenants {
			in[t] = true
		}
		id := d.cron.Schedule(jittered{g.sched}, cron.FuncJob(func() { d.tick(j.Stream.Name, func(t string) bool { return in[t] }, true, runScheduled) }))
		d.entries[j.Stream.Name] = append(d.entries[j.Stream.Name], id)
	}
	// The reconciliation, for every enabled tenant: a tick of its own.
	if !j.Schedule.NextReconcile(time.Now()).IsZero() {
		all := func(string) bool { return true }
		id := d.cron.Schedule(reconciling{j.Schedule}, cron.FuncJob(func() { d.tick(j.Stream.Name, all, true, runReconcile) }))
		d.entries[j.Stream.Name] = append(d.entries[j.Stream.Name], id)
	}
	d.refreshNext(j)
}

// unschedule removes stream's cron entries and next run (the reload lock).
func (d *Daemon) unschedule(stream string) {
	for _, id := range d.entries[stream] {
		d.cron.Remove(id)
	}
	delete(d.entries, stream)
	d.mu.Lock()
	delete(d.next, stream)
	d.mu.Unlock()
	if d.Metrics != nil {
		d.Metrics.nextRun.DeleteLabelValues(stream)
	}
}

// jittered is what the cron runs: the schedule shifted by the stream's
// stable delay, exactly as Schedule.Next says.
type jittered struct{ s Schedule }

func (j jittered) Next(t time.Time) time.Time { return j.s.Next(t) }

// reconciling is what the cron runs for the stream's reconciliation.
type reconciling struct{ s Schedule }

func (r reconciling) Next(t time.Time) time.Time { return r.s.NextReconcile(t) }

// runKind is what starts a run: its schedule (or a Tick), a provider's
// webhook (extract.Request.Triggered), or the reconcile schedule.
type runKind int

const (
	runScheduled runKind = iota
	runTriggered
	runReconcile
)

// refreshNext sets when j runs next: the earliest of its groups' next
// ticks, if it has any.
func (d *Daemon) refreshNext(j Job) {
	var next time.Time
	now := time.Now()
	for _, g := range groups(j) {
		if t := g.sched.Next(now); next.IsZero() || t.Before(next) {
			next = t
		}
	}
	if next.IsZero() {
		return
	}
	d.mu.Lock()
	d.next[j.Stream.Name] = next
	d.mu.Unlock()
	if d.Metrics != nil {
		d.Metrics.nextRun.WithLabelValues(j.Stream.Name).Set(float64(next.Unix()))
	}
}

// Next is when each scheduled stream runs next.
func (d *Daemon) Next() map[string]time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]time.Time, len(d.next))
	for k, v := range d.next {
		out[k] = v
	}
	return out
}

// Current are the jobs as scheduled now (Start's, or the last Reload's).
func (d *Daemon) Current() []Job {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.Jobs
}

func (d *Daemon) job(stream string) *Job {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.jobLocked(stream)
}

func (d *Daemon) jobLocked(stream string) *Job {
	for i := range d.Jobs {
		if d.Jobs[i].Stream.Name == stream {
			return &d.Jobs[i]
		}
	}
	return nil
}

// Tick runs a stream now for its tenants (or only tenant, if not ""),
// whatever their schedules say, in the background, unless its previous run
// is still going: then the tick is skipped and counted. Once Stop began it
// starts nothing. It reports whether the runs started.
func (d *Daemon) Tick(stream, tenant string) bool {
	return d.tick(stream, func(t string) bool { return tenant == "" || t == tenant }, false, runScheduled)
}

// tick is Tick for the tenants wanted, runs of kind; the schedule calls it
// (scheduled) with a group's tenants, and runs only those still enabled (a
// reload may have disabled one since).
func (d *Daemon) tick(stream string, want func(string) bool, scheduled bool, kind runKind) bool {
	job := d.job(stream)
	if job == nil || d.Stopping() {
		return false
	}
	if scheduled {
		in := want
		want = func(t string) bool { return in(t) && job.Schedule.For(t).Enabled }
	}
	d.refreshNext(*job)
	d.mu.Lock()
	lock := d.busy[stream]
	d.mu.Unlock()
	if !lock.TryLock() {
		d.Log.Warn("tick skipped: the previous run is still going", "stream", stream, "reconcile", kind == runReconcile)
		if d.Metrics != nil {
			d.Metrics.skipped.WithLabelValues(stream).Inc()
		}
		return false
	}
	d.mu.Lock()
	if d.stopping {
		lock.Unlock()
		d.mu.Unlock()
		return false
	}
	d.wg.Add(1)
	d.mu.Unlock()
	go d.runTenants(job, lock, want, kind)
	return true
}

// Trigger starts a triggered run of stream for tenant ("" = each of its
// tenants) now, in the background: a webhook or callback calls it when the
// provider says data is ready. A stream the schedules file disables is not
// started (enabled: false means never). A triggered run (extract.Request.Triggered)
// collects what is pending and starts nothing new at the provider. When the
// stream's previous run is still going, the trigger waits and its run
// starts as soon as that one ends (triggers meanwhile make one run per
// tenant): an announcement is never lost because a run was busy. It reports
// whether the stream and tenant are the daemon's, and enabled (a tenant's
// own schedule may disable it).
func (d *Daemon) Trigger(stream, tenant string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	job := d.jobLocked(stream)
	if job == nil {
		return false
	}
	want := func(t string) bool { return (tenant == "" || t == tenant) && job.Schedule.For(t).Enabled }
	lock := d.busy[stream]
	if !slices.ContainsFunc(job.Tenants, want) || d.stopping || lock == nil { // lock is nil before Start
		return false
	}
	if !lock.TryLock() {
		q := d.queued[stream]
		if q == nil {
			q = map[string]bool{}
			d.queued[stream] = q
		}
		for _, t := range job.Tenants {
			if want(t) {
				q[t] = true
			}
		}
		d.Log.Info("triggered run queued: the stream's run is still going", "stream", stream, "tenant", tenant)
		return true
	}
	d.wg.Add(1)
	go d.runTenants(job, lock, want, runTriggered)
	return true
}

// runTenants runs job for the tenants wanted, then the triggered runs
// queued meanwhile, and releases the stream's lock (holding d.mu, so that a
// trigger either sees the lock taken and queues, or takes it itself).
func (d *Daemon) runTenants(job *Job, lock *sync.Mutex, want func(string) bool, kind runKind) {
	defer d.wg.Done()
	for {
		// The lock is free: no run of this stream is going here, so one
		// still `running` past its timeout is a dead process's.
		d.abandon(d.runCtx, job)
		for _, t := range job.Tenants {
			if !want(t) {
				continue
			}
			if d.Stopping() {
				d.Log.Info("stopping: the stream's remaining tenants do not start", "stream", job.Stream.Name, "tenant", t)
				break
			}
			d.runOne(job, t, kind)
		}
		if d.AfterRuns != nil && !d.Stopping() {
			d.AfterRuns(d.runCtx, job.Stream)
		}
		d.mu.Lock()
		q := d.queued[job.Stream.Name]
		delete(d.queued, job.Stream.Name)
		if len(q) == 0 || d.stopping || d.runCtx.Err() != nil {
			lock.Unlock()
			d.mu.Unlock()
			return
		}
		if j := d.jobLocked(job.Stream.Name); j != nil {
			job = j // as a reload left it
		}
		d.mu.Unlock()
		want, kind = func(t string) bool { return q[t] }, runTriggered
	}
}

// AbandonStale marks abandoned every job's runs left `running` past the
// stream's timeout by a process that died (Runner.AbandonStale), and
// deletes the leases such processes left (Runner.DeleteLapsedLeases); the
// daemon calls it at start-up, and abandon for a stream each time it takes
// the stream's lock.
func (d *Daemon) AbandonStale(ctx context.Context) {
	for i := range d.Jobs {
		d.abandon(ctx, &d.Jobs[i])
		if err := d.Runner.DeleteLapsedLeases(ctx, d.Jobs[i].Stream.Name); err != nil && d.Log != nil {
			d.Log.Warn("lapsed leases not deleted", "stream", d.Jobs[i].Stream.Name, "err", err)
		}
	}
}

// abandon marks abandoned job's runs left running past the longest of its
// tenants' timeouts.
func (d *Daemon) abandon(ctx context.Context, job *Job) {
	timeout := job.Schedule.Timeout
	for _, t := range job.Schedule.PerTenant {
		timeout = max(timeout, t.Timeout)
	}
	runs, err := d.Runner.AbandonStale(ctx, job.Stream.Name, timeout)
	if err != nil && d.Log != nil {
		d.Log.Warn("looking for abandoned runs", "stream", job.Stream.Name, "err", err)
	}
	if d.Metrics != nil {
		for _, r := range runs {
			d.Metrics.runs.WithLabelValues(job.Stream.Name, r.Tenant, clickhouse.RunAbandoned).Inc()
		}
	}
}

// Stopping reports whether Stop began: no run starts any more.
func (d *Daemon) Stopping() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stopping
}

// runOne runs job for one tenant within the concurrency limits.
func (d *Daemon) runOne(job *Job, tenant string, kind runKind) {
	release, err := d.acquire(job.Stream.Provider)
	if err != nil {
		return // stopping
	}
	defer release()
	sched := job.Schedule.For(tenant)
	ctx, cancel := context.WithTimeout(d.runCtx, sched.Timeout)
	defer cancel()
	if d.Metrics != nil {
		d.Metrics.running.WithLabelValues(job.Stream.Name).Inc()
		defer d.Metrics.running.WithLabelValues(job.Stream.Name).Dec()
	}
	run, err := d.safeRun(ctx, job.Stream, tenant, sched, kind)
	// Another process (a daemon, a `finsync once`) runs it: not a failure,
	// a tick this daemon skips.
	if busy := (*Busy)(nil); errors.As(err, &busy) {
		d.Log.Warn("tick skipped: another process runs the stream for the tenant", "stream", job.Stream.Name, "tenant", tenant, "err", err)
		if d.Metrics != nil {
			d.Metrics.skipped.WithLabelValues(job.Stream.Name).Inc()
		}
		return
	}
	if d.Metrics != nil && !run.FinishedAt.IsZero() {
		d.Metrics.observeRun(run)
	}
	// A run the runner finished was logged by it, once; this is for one
	// that never got that far.
	if err != nil && run.FinishedAt.IsZero() {
		d.Log.Error("run failed", "stream", job.Stream.Name, "tenant", tenant, "run", run.ID, "err", err)
	}
}

// safeRun keeps a panic outside the stream (the runner catches the
// stream's own) from taking the daemon down.
func (d *Daemon) safeRun(ctx context.Context, s extract.Stream, tenant string, sched Schedule, kind runKind) (run clickhouse.Run, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic running %s: %v", s.Name, p)
		}
	}()
	if kind == runReconcile {
		return d.Runner.RunReconcile(ctx, s, tenant, sched)
	}
	return d.Runner.RunScheduled(ctx, s, tenant, sched, kind == runTriggered)
}

// acquire takes the provider's slot first and only then a global one, so
// that a run waiting for its busy provider holds no global slot another
// provider's run could use. It fails once Stop began: a run that has not
// started yet does not start.
func (d *Daemon) acquire(provider string) (func(), error) {
	take := func(ch chan struct{}) error {
		if ch == nil {
			return nil
		}
		select {
		case <-d.stop:
			return errStopping
		default:
		}
		select {
		case ch <- struct{}{}:
			return nil
		case <-d.stop:
			return errStopping
		}
	}
	per := d.per[provider]
	if err := take(per); err != nil {
		return nil, err
	}
	if err := take(d.global); err != nil {
		if per != nil {
			<-per
		}
		return nil, err
	}
	return func() {
		if d.global != nil {
			<-d.global
		}
		if per != nil {
			<-per
		}
	}, nil
}

var errStopping = errors.New("the daemon is stopping")

// Stop starts no more runs (ticks, webhook triggers and a stream's
// remaining tenants alike) and waits up to grace for the running ones to
// load what they read and checkpoint; then it cancels them (a cancelled
// run loads nothing more and moves no cursor) and waits for them to end.
// It reports whether the runs finished within grace.
func (d *Daemon) Stop(grace time.Duration) bool {
	d.mu.Lock()
	if !d.stopping {
		d.stopping = true
		close(d.stop)
	}
	d.mu.Unlock()
	<-d.cron.Stop().Done()
	done := make(chan struct{})
	go func() {
		d.wg.Wait()
		close(done)
	}()
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-done:
		d.cancel()
		return true
	case <-timer.C:
		d.Log.Warn("grace period over: cancelling the runs still going", "grace", grace.String())
		d.cancel()
		<-done
		return false
	}
}
