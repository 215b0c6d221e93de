package schedules

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/load/clickhouse"
	"github.com/finsync/finsync/transform"
)

// The runner's side of the stream contract: sink is every run's
// extract.Output; subjectLog, jobLog, ledger and ownRows are the optional
// parts, each made only for a stream that declares it needs it.

// sink is the runner's extract.Output: a batch per table, rejects into
// etl_rejects. The run's context governs the batches.
type sink struct {
	ctx     context.Context
	loader  *clickhouse.Loader
	stream  string
	lineage transform.Lineage
	batches map[string]*clickhouse.Batch
	order   []string
	rejects uint64
	// rejected builds etl_rejects rows; they are few, so row by row.
	rejected *transform.RowWriter
	// rejectedKeys: a record met again (a page read again after a retry,
	// a provider repeating a record) is one reject, as in etl_rejects,
	// whose key is stream, run and key.
	rejectedKeys map[string]bool
	progress     func(records int64) // Runner.Progress
}

func newSink(ctx context.Context, l *clickhouse.Loader, stream string, lin transform.Lineage) *sink {
	return &sink{ctx: ctx, loader: l, stream: stream, lineage: lin, batches: map[string]*clickhouse.Batch{},
		rejected: transform.NewRowWriter(memory.DefaultAllocator, transform.EtlRejects), rejectedKeys: map[string]bool{}}
}

func (s *sink) batch(t transform.Table) *clickhouse.Batch {
	b, ok := s.batches[t.Name]
	if !ok {
		b = s.loader.NewBatch(s.ctx, t)
		s.batches[t.Name] = b
		s.order = append(s.order, t.Name)
	}
	return b
}

func (s *sink) Records(t transform.Table, rec arrow.Record) error {
	if s.progress != nil {
		s.progress(rec.NumRows())
	}
	return s.batch(t).Append(rec)
}

func (s *sink) Reject(r extract.Reject) error {
	key := r.Key
	if key == "" {
		sum := sha256.Sum256(r.Raw)
		key = "sha256:" + hex.EncodeToString(sum[:8])
	}
	if s.rejectedKeys[key] {
		return nil
	}
	s.rejectedKeys[key] = true
	s.rejects++
	return s.rejected.Append(s.stream, s.lineage.RunID, key, s.lineage.Provider, s.lineage.Tenant,
		r.Table, r.Reason, string(r.Raw), s.lineage.ExtractedAt, s.lineage.Version)
}

// send loads the rejects and waits for every batch; it returns the first
// error after trying them all.
func (s *sink) send() error {
	rec := s.rejected.Record()
	defer rec.Release()
	var errs []error
	if rec.NumRows() > 0 {
		errs = append(errs, s.batch(transform.EtlRejects).Append(rec))
	}
	for _, name := range s.order {
		errs = append(errs, s.batches[name].Send())
	}
	return errors.Join(errs...)
}

func (s *sink) accepted() map[string]uint64 {
	rows := map[string]uint64{}
	for name, b := range s.batches {
		rows[name] = uint64(b.Rows())
	}
	return rows
}

func (s *sink) retries() int64 {
	var n int64
	for _, b := range s.batches {
		n += b.Retries()
	}
	return n
}

func (s *sink) release() { s.rejected.Release() }

// subjectLog is the runner's extract.Registry, for a per-subject stream:
// it notes the subjects the stream skips or forgets, with their registry
// entries; the run writes them once its records are loaded.
type subjectLog struct {
	stream string
	known  map[string]extract.Subject // the registry's entries, by id
	asked  int                        // subjects the run hands the stream
	grace  time.Duration              // Runner.QuarantineGrace
	now    func() time.Time

	mu        sync.Mutex
	skipped   []extract.Subject // registry entries with their new status
	forgotten []extract.Subject // subjects whose rows are to be deleted, status revoked
	// Gone: the subjects quarantined by this run, those whose quarantine
	// it confirmed (to be forgotten, unless every subject is gone), and
	// the ids of all of them.
	quarantined, confirmed []extract.Subject
	gone                   map[string]bool
	read                   []string // ids the stream read to the end (Read)
}

// entry is s's registry entry with its new status, and why.
func (l *subjectLog) entry(s extract.Subject, status, reason string) extract.Subject {
	row, ok := l.known[s.ID]
	if !ok {
		row = extract.Subject{Provider: s.Provider, Tenant: s.Tenant, Kind: s.Kind, ID: s.ID, Source: clickhouse.SourceInsert}
	}
	row.Status, row.StatusDetail = status, l.stream+": "+reason
	return row
}

// Skip notes a subject the provider could not serve; the run records it
// in the registry's status once it ends.
func (l *subjectLog) Skip(_ context.Context, s extract.Subject, reason string) error {
	row := l.entry(s, "skipped", reason)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.skipped = append(l.skipped, row)
	return nil
}

// Forget notes a subject whose data the provider deleted; the run deletes
// its rows once its records are loaded.
func (l *subjectLog) Forget(_ context.Context, s extract.Subject, reason string) error {
	row := l.entry(s, extract.SubjectRevoked, reason)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.forgotten = append(l.forgotten, row)
	return nil
}

// Gone quarantines a subject the provider did not know this time, or
// confirms the quarantine of one it did not know a grace period ago too.
func (l *subjectLog) Gone(_ context.Context, s extract.Subject, reason string) error {
	now := l.now().UTC()
	old := l.known[s.ID]
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gone == nil {
		l.gone = map[string]bool{}
	}
	l.gone[s.ID] = true
	if old.Status == extract.SubjectQuarantined {
		if since, ok := quarantinedSince(old.StatusDetail); ok {
			if now.Sub(since) >= l.grace {
				l.confirmed = append(l.confirmed, l.entry(s, extract.SubjectRevoked,
					fmt.Sprintf("%s; the same answer since %s, past the quarantine of %s", reason, since.Format(time.RFC3339), l.grace)))
			}
			return nil // still within its grace: as it was
		}
	}
	row := l.entry(s, extract.SubjectQuarantined, reason)
	row.StatusDetail = quarantinePrefix + now.Format(time.RFC3339) + ": " + row.StatusDetail
	l.quarantined = append(l.quarantined, row)
	return nil
}

// Read notes a subject the stream read to the end.
func (l *subjectLog) Read(s extract.Subject) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.read = append(l.read, s.ID)
}

// readIDs are the subjects read to the end that the stream said nothing
// else of: one skipped, gone or forgotten is asked again by the run that
// resumes this one, whose outcome then counts.
func (l *subjectLog) readIDs() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	other := map[string]bool{}
	for _, s := range slices.Concat(l.skipped, l.forgotten) {
		other[s.ID] = true
	}
	var ids []string
	for _, id := range l.read {
		if !other[id] && !l.gone[id] {
			ids = append(ids, id)
		}
	}
	return ids
}

const quarantinePrefix = "since "

// quarantinedSince reads when a quarantine began from its status detail.
func quarantinedSince(detail string) (time.Time, bool) {
	ts, _, ok := strings.Cut(strings.TrimPrefix(detail, quarantinePrefix), ": ")
	if !ok || !strings.HasPrefix(detail, quarantinePrefix) {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339, ts)
	return t, err == nil
}

// settleGone decides what the Gone subjects come to, once the stream ended
// without error: when every subject of the run (two or more) was gone it
// is the configuration, not the provider's deletions: nothing is
// quarantined or deleted and the run fails; otherwise the confirmed ones
// are forgotten, and the quarantined subjects that answered again are
// lifted. It returns the quarantines lifted, and the run's error.
func (l *subjectLog) settleGone() ([]extract.Subject, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.gone) >= 2 && len(l.gone) == l.asked {
		n := len(l.gone)
		l.quarantined, l.confirmed, l.gone, l.read = nil, nil, nil, nil // nothing was read either
		return nil, &extract.Permanent{Err: fmt.Errorf("every one of the run's %d subjects answered as unknown (404): a wrong base URL or "+
			"endpoint path, not %d deletions; nothing was quarantined or deleted", n, n)}
	}
	l.forgotten = append(l.forgotten, l.confirmed...)
	var lifted []extract.Subject
	for id, old := range l.known {
		if old.Status == extract.SubjectQuarantined && !l.gone[id] {
			old.Status, old.StatusDetail = extract.SubjectActive, l.stream+": answered again at "+l.now().UTC().Format(time.RFC3339)+"; quarantine lifted"
			lifted = append(lifted, old)
		}
	}
	return lifted, nil
}

// stillQuarantined counts the run's subjects in quarantine once it ended
// and settleGone ran: those it found so and that were gone again but not
// confirmed, and those it quarantined.
func (l *subjectLog) stillQuarantined() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	confirmed := map[string]bool{}
	for _, c := range l.confirmed {
		confirmed[c.ID] = true
	}
	var n int64
	for id, old := range l.known {
		if old.Status == extract.SubjectQuarantined && l.gone[id] && !confirmed[id] {
			n++
		}
	}
	for _, q := range l.quarantined {
		if l.known[q.ID].Status != extract.SubjectQuarantined {
			n++
		}
	}
	return n
}

// jobLog is the runner's extract.JobLog, for an async stream.
type jobLog struct {
	state          *clickhouse.State
	stream, tenant string

	mu   sync.Mutex
	done []extract.Job // written once the run's records are loaded (writeDone)
}

// Put writes an async job's state now, or for a done job once the run's
// records are loaded.
func (l *jobLog) Put(ctx context.Context, j extract.Job) error {
	if j.Status == extract.JobDone {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.done = append(l.done, j)
		return nil
	}
	return l.state.PutJob(ctx, l.stream, l.tenant, j)
}

// writeDone writes the jobs the run collected; call it once their records
// are loaded.
func (l *jobLog) writeDone(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, j := range l.done {
		if err := l.state.PutJob(ctx, l.stream, l.tenant, j); err != nil {
			return err
		}
	}
	return nil
}

// ledger is the runner's extract.Ledger, for a stream with Reads.
type ledger struct {
	loader *clickhouse.Loader
	state  *clickhouse.State
	unsent clickhouse.UnsentQuery

	mu sync.Mutex
	// stalled records wait on an outcome no run can learn (-1: not
	// reported), and why.
	stalled    int64
	stalledWhy string
}

func newLedger(l *clickhouse.Loader, st *clickhouse.State, s extract.Stream, tenant string) *ledger {
	rd := s.Reads
	return &ledger{loader: l, state: st, stalled: -1, unsent: clickhouse.UnsentQuery{Table: rd.Table, Key: rd.Key, Columns: rd.Columns,
		Ledger: rd.Ledger, LedgerKey: rd.LedgerKey, Released: rd.Released, Provider: s.Provider, Tenant: tenant}}
}

func (l *ledger) Unsent(ctx context.Context, fn func(row []string) error) error {
	return l.state.Unsent(ctx, l.unsent, fn)
}

// Commit loads rec into the ledger at once, in an INSERT of its own, as the
// daemon writes the rows a webhook carried.
func (l *ledger) Commit(ctx context.Context, rec arrow.Record) error {
	return l.loader.Insert(ctx, l.unsent.Ledger, rec)
}

// Register enters subjects the run created into the registry at once.
func (l *ledger) Register(ctx context.Context, subs []extract.Subject) error {
	rows := make([]extract.Subject, len(subs))
	for i, sub := range subs {
		rows[i] = extract.Subject{Provider: sub.Provider, Tenant: sub.Tenant, Kind: sub.Kind, ID: sub.ID,
			CorrelationID: sub.CorrelationID, FirstSeen: sub.FirstSeen, Source: clickhouse.SourceSubmission}
	}
	return l.state.AddSubjects(ctx, rows)
}

// Stalled notes the stream's records waiting on an unknowable outcome.
func (l *ledger) Stalled(_ context.Context, n uint64, why string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stalled, l.stalledWhy = int64(n), why
}

// stalledRecords are the records the stream last reported stalled (-1:
// none reported), and why.
func (l *ledger) stalledRecords() (int64, string) {
	if l == nil {
		return -1, ""
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stalled, l.stalledWhy
}

// ownRows is the runner's extract.Lookuper, for a stream with ReadsOwn.
type ownRows struct {
	state  *clickhouse.State
	stream extract.Stream
	tenant string
}

func (o ownRows) Lookup(ctx context.Context, q extract.Lookup, fn func(row []string) error) error {
	if !slices.ContainsFunc(o.stream.Tables, func(t transform.Table) bool { return t.Name == q.Table.Name }) {
		return fmt.Errorf("%s may look up only its own tables, not %s", o.stream.Name, q.Table.Name)
	}
	return o.state.Lookup(ctx, clickhouse.LookupQuery{Table: q.Table, Columns: q.Columns, Where: q.Where,
		Provider: o.stream.Provider, Tenant: o.tenant}, fn)
}
