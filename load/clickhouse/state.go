package clickhouse

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/transform"
)

// State keeps the pipeline's own bookkeeping in ClickHouse: cursors and
// pending async jobs in etl_state, one row per run in etl_runs. Rows are
// versioned, so the newest write of a key wins (read with FINAL).
type State struct {
	db     *DB
	loader *Loader
	mem    memory.Allocator

	mu   sync.Mutex
	last uint64 // the last _version handed out
}

// NewState returns the state API over db, writing through loader.
func NewState(db *DB, loader *Loader) *State {
	return &State{db: db, loader: loader, mem: memory.DefaultAllocator}
}

// Version returns a _version larger than any this State handed out before:
// the wall clock in nanoseconds, bumped when two calls share a tick.
func (s *State) Version() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := uint64(time.Now().UnixNano())
	if v <= s.last {
		v = s.last + 1
	}
	s.last = v
	return v
}

const cursorKey = "cursor"

// CursorKey is the etl_state key of a stream's cursor: "cursor", or
// "cursor@i/n" for shard i/n of a per-subject stream split over shards.
func CursorKey(shard string) string {
	if shard == "" {
		return cursorKey
	}
	return cursorKey + "@" + shard
}

// Cursor returns the cursor of stream for tenant, "" before the first run.
func (s *State) Cursor(ctx context.Context, stream, tenant string) (string, error) {
	return s.Checkpoint(ctx, stream, tenant, cursorKey)
}

// SetCursor records the cursor of stream for tenant. Call it only after
// ClickHouse accepted every row the cursor covers (Batch.Send returned nil):
// a crash between the two then re-reads the window, and the reload
// replaces the rows instead of duplicating them.
func (s *State) SetCursor(ctx context.Context, stream, tenant, cursor string) error {
	return s.SetCheckpoint(ctx, stream, tenant, cursorKey, cursor)
}

// Checkpoint returns the value stored under key for stream and tenant ("" if
// none): the cursor, or a backfill's progress.
func (s *State) Checkpoint(ctx context.Context, stream, tenant, key string) (string, error) {
	var v string
	err := s.db.conn.QueryRow(ctx, "SELECT value FROM "+s.db.table(transform.EtlState.Name)+
		" FINAL WHERE stream = ? AND tenant = ? AND key = ?", stream, tenant, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading %s of %s/%s: %w", key, stream, tenant, err)
	}
	return v, nil
}

// SetCheckpoint stores value under key for stream and tenant; like
// SetCursor, only once the rows it covers were accepted.
func (s *State) SetCheckpoint(ctx context.Context, stream, tenant, key, value string) error {
	now := time.Now().UTC()
	return s.write(ctx, transform.EtlState, stream, tenant, key, value, extract.JobActive, now, nil, now, s.Version())
}

const jobKeyPrefix = "job:"

// PutJob records or updates a job. Record a job right after the provider
// returned its id and before anything else, so a restart resumes polling it
// instead of creating (and paying for) a new one.
func (s *State) PutJob(ctx context.Context, stream, tenant string, j extract.Job) error {
	if j.Status == "" {
		j.Status = extract.JobActive
	}
	var next any
	if !j.NextPollAt.IsZero() {
		next = j.NextPollAt.UTC()
	}
	return s.write(ctx, transform.EtlState, stream, tenant, jobKeyPrefix+j.ID, j.Params, j.Status,
		j.CreatedAt.UTC(), next, time.Now().UTC(), s.Version())
}

// JobStatus returns the status of job id of stream for tenant, "" if it
// was never recorded.
func (s *State) JobStatus(ctx context.Context, stream, tenant, id string) (string, error) {
	var status string
	err := s.db.conn.QueryRow(ctx, "SELECT status FROM "+s.db.table(transform.EtlState.Name)+
		" FINAL WHERE stream = ? AND tenant = ? AND key = ?", stream, tenant, jobKeyPrefix+id).Scan(&status)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading job %s of %s/%s: %w", id, stream, tenant, err)
	}
	return status, nil
}

// Jobs returns the jobs of stream for tenant with the given status, oldest
// first.
func (s *State) Jobs(ctx context.Context, stream, tenant, status string) ([]extract.Job, error) {
	rows, err := s.db.conn.Query(ctx, "SELECT substring(key, ?), value, status, created_at, next_poll_at FROM "+
		s.db.table(transform.EtlState.Name)+" FINAL WHERE stream = ? AND tenant = ? AND startsWith(key, ?) AND status = ?",
		len(jobKeyPrefix)+1, stream, tenant, jobKeyPrefix, status)
	if err != nil {
		return nil, fmt.Errorf("reading jobs of %s/%s: %w", stream, tenant, err)
	}
	defer rows.Close()
	var jobs []extract.Job
	for rows.Next() {
		var j extract.Job
		var next *time.Time
		if err := rows.Scan(&j.ID, &j.Params, &j.Status, &j.CreatedAt, &next); err != nil {
			return nil, err
		}
		if next != nil {
			j.NextPollAt = *next
		}
		jobs = append(jobs, j)
	}
	sort.Slice(jobs, func(a, b int) bool { return jobs[a].CreatedAt.Before(jobs[b].CreatedAt) })
	return jobs, rows.Err()
}

// Run statuses in etl_runs.
const (
	RunRunning = "running"
	RunSuccess = "success"
	RunPartial = "partial" // stopped early (rate limit, deadline); the next run resumes
	RunFailed  = "failed"
	// RunAbandoned is a run that stopped without recording how it ended
	// (killed, crashed, lost ClickHouse): see AbandonRuns.
	RunAbandoned = "abandoned"
)

// Run is one run of one stream for one tenant.
type Run struct {
	Stream, ID, Tenant string
	Status             string
	WindowFrom         time.Time // zero = none
	WindowTo           time.Time
	StartedAt          time.Time
	FinishedAt         time.Time         // zero while running
	Rows               map[string]uint64 // rows accepted per table
	Rejects            uint64
	Retries            uint64
	Error              string
	// Stalled are records the run reported waiting on an outcome no run can
	// learn (extract.Ledger.Stalled), -1 when its stream reports none; not a
	// column: the run's Error says so.
	Stalled int64
	// Quarantined are the run's subjects in quarantine when it ended
	// (extract.Registry.Gone), -1 when not known (not a per-subject stream,
	// or the run stopped early); not a column: the subjects table says so.
	Quarantined int64
	// Inconsistent is the Check of the extract.Inconsistent the run ended
	// with, "" if none; not a column: the run's Error says so.
	Inconsistent string
	// Reconcile says the run was a reconciliation (its ID ends in
	// ReconcileSuffix), and Missed are the rows it loaded whose natural key
	// was not in the warehouse before; not a column: the run's Error says so.
	Reconcile bool
	Missed    uint64
}

// ReconcileSuffix ends the ID of a reconciliation run: etl_runs and the
// rows' run_id tell such runs apart by it.
const ReconcileSuffix = "-reconcile"

// RecordRun writes the run's current row; call it when the run starts and
// again when it ends (the newer row replaces the older).
func (s *State) RecordRun(ctx context.Context, r Run) error {
	tables := make([]string, 0, len(r.Rows))
	for t := range r.Rows {
		tables = append(tables, t)
	}
	sort.Strings(tables)
	counts := make([]uint64, len(tables))
	var total uint64
	for i, t := range tables {
		counts[i] = r.Rows[t]
		total += r.Rows[t]
	}
	var duration uint64
	var finished any
	if !r.FinishedAt.IsZero() {
		finished = r.FinishedAt.UTC()
		duration = uint64(r.FinishedAt.Sub(r.StartedAt).Milliseconds())
	}
	return s.write(ctx, transform.EtlRuns, r.Stream, r.ID, r.Tenant, r.Status,
		optTime(r.WindowFrom), optTime(r.WindowTo), r.StartedAt.UTC(), finished,
		tables, counts, total, r.Rejects, r.Retries, duration, r.Error, s.Version())
}

func optTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC()
}

// write inserts one row of t and waits until ClickHouse accepted it.
func (s *State) write(ctx context.Context, t transform.Table, vals ...any) error {
	w := transform.NewRowWriter(s.mem, t)
	defer w.Release()
	if err := w.Append(vals...); err != nil {
		return err
	}
	rec := w.Record()
	defer rec.Release()
	return s.loader.Insert(ctx, t, rec)
}

// AbandonRuns marks abandoned the runs of stream still `running` whose row
// was last written (started or heartbeat, its _version) before silentSince,
// with reason and when the run was last seen in the error, and returns
// them. A live run rewrites its row every heartbeat, so a row silent for
// longer than the run could live belongs to a process that died; should
// the run end after all, its final row is newer and replaces the mark.
func (s *State) AbandonRuns(ctx context.Context, stream string, silentSince time.Time, reason string) ([]Run, error) {
	rows, err := s.db.conn.Query(ctx, "SELECT run_id, tenant, window_from, window_to, started_at, rows_tables, rows_counts, rejects, retries, _version FROM "+
		s.db.table(transform.EtlRuns.Name)+" FINAL WHERE stream = ? AND status = ? AND _version < ? ORDER BY started_at, run_id",
		stream, RunRunning, uint64(silentSince.UnixNano()))
	if err != nil {
		return nil, fmt.Errorf("reading the running runs of %s: %w", stream, err)
	}
	var runs []Run
	for rows.Next() {
		r := Run{Stream: stream, Status: RunAbandoned}
		var from, to *time.Time
		var tables []string
		var counts []uint64
		var version uint64
		if err := rows.Scan(&r.ID, &r.Tenant, &from, &to, &r.StartedAt, &tables, &counts, &r.Rejects, &r.Retries, &version); err != nil {
			rows.Close()
			return nil, err
		}
		if from != nil {
			r.WindowFrom = *from
		}
		if to != nil {
			r.WindowTo = *to
		}
		r.Rows = make(map[string]uint64, len(tables))
		for i, t := range tables {
			r.Rows[t] = counts[i]
		}
		r.Error = fmt.Sprintf("%s (last seen %s)", reason, time.Unix(0, int64(version)).UTC().Format(time.DateTime))
		runs = append(runs, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i, r := range runs {
		if err := s.RecordRun(ctx, r); err != nil {
			return runs[:i], fmt.Errorf("marking run %s of %s abandoned: %w", r.ID, stream, err)
		}
	}
	return runs, nil
}

// RunCounts returns how many runs of each stream started since `since`,
// by status.
func (s *State) RunCounts(ctx context.Context, since time.Time) (map[string]map[string]uint64, error) {
	rows, err := s.db.conn.Query(ctx, "SELECT stream, status, count() FROM "+s.db.table(transform.EtlRuns.Name)+
		" FINAL WHERE started_at >= ? GROUP BY stream, status", since.UTC())
	if err != nil {
		return nil, fmt.Errorf("counting runs: %w", err)
	}
	defer rows.Close()
	out := map[string]map[string]uint64{}
	for rows.Next() {
		var stream, status string
		var n uint64
		if err := rows.Scan(&stream, &status, &n); err != nil {
			return nil, err
		}
		if out[stream] == nil {
			out[stream] = map[string]uint64{}
		}
		out[stream][status] = n
	}
	return out, rows.Err()
}

// runColumns are the columns scanRuns reads, in its order.
const runColumns = "stream, run_id, tenant, status, started_at, finished_at, rows_tables, rows_counts, rejects, retries, error"

// RecentRuns returns the last n runs of every stream, newest first.
func (s *State) RecentRuns(ctx context.Context, n int) (map[string][]Run, error) {
	out := map[string][]Run{}
	err := s.scanRuns(ctx, "SELECT "+runColumns+" FROM "+s.db.table(transform.EtlRuns.Name)+
		" FINAL ORDER BY stream, started_at DESC, run_id DESC LIMIT ? BY stream", []any{n}, func(r Run) {
		out[r.Stream] = append(out[r.Stream], r)
	})
	if err != nil {
		return nil, fmt.Errorf("reading recent runs: %w", err)
	}
	return out, nil
}

// LastRuns returns the last run of every stream for each of its tenants
// (stream → tenant → run): a stream runs once per tenant, and the last run
// of one tenant says nothing about the others.
func (s *State) LastRuns(ctx context.Context) (map[string]map[string]Run, error) {
	out := map[string]map[string]Run{}
	err := s.scanRuns(ctx, "SELECT "+runColumns+" FROM "+s.db.table(transform.EtlRuns.Name)+
		" FINAL ORDER BY stream, tenant, started_at DESC, run_id DESC LIMIT 1 BY stream, tenant", nil, func(r Run) {
		if out[r.Stream] == nil {
			out[r.Stream] = map[string]Run{}
		}
		out[r.Stream][r.Tenant] = r
	})
	if err != nil {
		return nil, fmt.Errorf("reading the last runs: %w", err)
	}
	return out, nil
}

// scanRuns hands each row of query (selecting runColumns) to fn.
func (s *State) scanRuns(ctx context.Context, query string, args []any, fn func(Run)) error {
	rows, err := s.db.conn.Query(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var r Run
		var finished *time.Time
		var tables []string
		var counts []uint64
		if err := rows.Scan(&r.Stream, &r.ID, &r.Tenant, &r.Status, &r.StartedAt, &finished, &tables, &counts, &r.Rejects, &r.Retries, &r.Error); err != nil {
			return err
		}
		if finished != nil {
			r.FinishedAt = *finished
		}
		r.Reconcile = strings.HasSuffix(r.ID, ReconcileSuffix)
		r.Rows = make(map[string]uint64, len(tables))
		for i, t := range tables {
			r.Rows[t] = counts[i]
		}
		fn(r)
	}
	return rows.Err()
}

// LastSuccess returns when each stream last succeeded, per tenant (a
// shard's runs under their tenant too).
func (s *State) LastSuccess(ctx context.Context) (map[string]map[string]time.Time, error) {
	rows, err := s.db.conn.Query(ctx, "SELECT stream, tenant, max(assumeNotNull(finished_at)) FROM "+s.db.table(transform.EtlRuns.Name)+
		" FINAL WHERE status = ? AND finished_at IS NOT NULL GROUP BY stream, tenant", RunSuccess)
	if err != nil {
		return nil, fmt.Errorf("reading the last successful runs: %w", err)
	}
	defer rows.Close()
	out := map[string]map[string]time.Time{}
	for rows.Next() {
		var stream, tenant string
		var at time.Time
		if err := rows.Scan(&stream, &tenant, &at); err != nil {
			return nil, err
		}
		if out[stream] == nil {
			out[stream] = map[string]time.Time{}
		}
		out[stream][tenant] = at
	}
	return out, rows.Err()
}

// Cursors returns every stream's cursor per tenant; a shard's cursor is
// listed under "tenant@i/n".
func (s *State) Cursors(ctx context.Context) (map[string]map[string]string, error) {
	rows, err := s.db.conn.Query(ctx, "SELECT stream, concat(tenant, substring(key, ?)), value FROM "+s.db.table(transform.EtlState.Name)+
		" FINAL WHERE key = ? OR startsWith(key, ?)", len(cursorKey)+1, cursorKey, cursorKey+"@")
	if err != nil {
		return nil, fmt.Errorf("reading cursors: %w", err)
	}
	defer rows.Close()
	out := map[string]map[string]string{}
	for rows.Next() {
		var stream, tenant, value string
		if err := rows.Scan(&stream, &tenant, &value); err != nil {
			return nil, err
		}
		if out[stream] == nil {
			out[stream] = map[string]string{}
		}
		out[stream][tenant] = value
	}
	return out, rows.Err()
}
