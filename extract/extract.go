// Package extract holds what every provider extractor shares: the stream
// contract below (Stream, what one run asks for in a Request, the Output
// it hands records to, and the optional parts a stream declares it needs),
// the nouns streams and the warehouse share (Subject, Job), the provider
// contract (provider.go: a provider's Settings from its FINSYNC_<P>_*
// variables build one Provider value: streams, tenants, subjects, webhook
// receiver on the shared Hooks, start-up work and sandbox), and the
// provider HTTP client (token cache, rate limit, retries with backoff,
// async-job polling, paging, streaming JSON).
//
// Each provider is one package below: extract/<p> (API, streams,
// transforms, settings, webhook receiver) with its fake in
// extract/<p>/sandbox, built on extract/sandboxkit. An extractor knows its
// provider's API and nothing of ClickHouse.
package extract

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/apache/arrow/go/v17/arrow"

	"github.com/finsync/finsync/transform"
)

// Window is the half-open time range [From, To) a run covers, in UTC.
type Window struct{ From, To time.Time }

// Subject is one entry of the subjects registry: a provider-side user,
// process or batch that per-subject streams iterate, because most provider
// APIs cannot list them. It is the one type of a subject: extractors,
// webhook receivers, the runner and the registry (load/clickhouse) share it.
type Subject struct {
	Provider string
	Tenant   string
	Kind     string // "user", "process", "batch", ...
	ID       string
	// Source is where the entry came from, the registry's source column
	// (config, webhook, submission, insert): whoever writes the entry sets
	// it, an extractor leaves it empty.
	Source string
	// CorrelationID is the provider's job handle that made the subject
	// known (finoOS correlation id, FinGoal batch_request_id), if any.
	CorrelationID string
	// Status is the registry's status of the subject ("" or SubjectActive,
	// "skipped", SubjectQuarantined, SubjectRevoked) and StatusDetail says
	// why. A stream never
	// extracts a revoked subject.
	Status       string
	StatusDetail string
	// FirstSeen is when the subject entered the registry: a stream reads
	// the whole history of a subject newer than its cursor.
	FirstSeen time.Time
	// UpdatedAt is when its registry entry was last written (as read).
	UpdatedAt time.Time
}

// SubjectRevoked is the status of a subject whose data the provider deleted
// (consent revoked, deleted at the provider): its rows were deleted from
// the warehouse and it is never extracted again. Registering it again
// (config, webhook) keeps the status; only an entry that sets another
// status explicitly (an operator's INSERT) reactivates it.
const SubjectRevoked = "revoked"

// SubjectQuarantined is the status of a subject the provider answered for
// as if it did not know it (Registry.Gone): nothing is deleted yet, the
// subject is still read, and its rows go only if a run at least the
// runner's grace later gets the same answer. SubjectActive is the status
// that lifts a quarantine or a revocation explicitly (an answer with the
// subject's data, `finsync reactivate`); "" is active too, but keeps a
// revoked or quarantined entry as it is.
const (
	SubjectQuarantined = "quarantined"
	SubjectActive      = "active"
)

// Request is what one run of a stream asks an extractor for. Its last
// fields are the optional parts of the contract (see Stream): the runner
// sets each only for a stream that declares it, so a stream that needs
// none of them sees none of them. The runner's parts are safe for
// concurrent use.
type Request struct {
	Tenant string
	Window Window
	Cursor string // opaque; "" on the first run
	// Lookback is how far before its cursor the run re-reads (late
	// bookings); 0: the provider's default.
	Lookback time.Duration
	// Params are the stream's params for this tenant from the schedules
	// file, as the daemon has them now (a tenant's override, a reload);
	// nil: the ones the provider was built with (Setup.Params).
	Params map[string]string
	// Triggered says a provider's webhook or callback started the run, not
	// the schedule (the data it announced is ready): the run collects what
	// is pending (Jobs) and starts nothing new at the provider (no job
	// created, no submission, no full read of the subjects), so a webhook
	// can never cause work that is billed or costs the provider's rate.
	Triggered bool
	// Reconcile says the run is a reconciliation (the schedules file's
	// reconcile), not an incremental run: it skips no subject for lack of
	// news and reads at least ReconcileLookback before the window's end (0:
	// the provider's default) besides what an incremental run would, so it
	// loads what those missed. Its cursor is one a normal run would leave
	// (never behind the one it started from). A stream that is not
	// incremental ignores it.
	Reconcile         bool
	ReconcileLookback time.Duration
	// Lineage goes on every row the run produces.
	Lineage transform.Lineage

	// Subjects are the registry's subjects of a per-subject stream
	// (Stream.SubjectKind) that the run covers, and Registry takes what the
	// stream learns about those it cannot read. Both are unset for a
	// tenant-level stream.
	Subjects []Subject
	Registry Registry
	// Jobs are an async stream's (Stream.Async) jobs for the tenant still
	// active at the provider (created by an earlier run that did not
	// collect them), oldest first: a run resumes them instead of creating
	// new ones. JobLog records their states. Both are unset for any other
	// stream.
	Jobs   []Job
	JobLog JobLog
	// Ledger is set for a stream with Stream.Reads: its reads of our own
	// warehouse and its submission ledger.
	Ledger Ledger
	// Own is set for a stream with Stream.ReadsOwn: it reads back what the
	// stream wrote before.
	Own Lookuper
}

// Registry takes what a per-subject stream learns about a subject it
// cannot read. The runner acts on it once the run's records are loaded.
type Registry interface {
	// Skip says a subject could not be extracted for a lasting reason (the
	// provider no longer knows it); the run goes on with the others, and
	// the subject's registry entry says why.
	Skip(ctx context.Context, s Subject, reason string) error
	// Forget says the provider deleted a subject's data (consent revoked,
	// deleted at the provider). Once the run's records are loaded, the
	// runner deletes every row of that subject from the warehouse, records
	// that it did, and marks it SubjectRevoked so no run extracts it again.
	Forget(ctx context.Context, s Subject, reason string) error
	// Gone says the provider answered as if it did not know the subject
	// (a 404), which one glitch can also say (a load balancer, a
	// maintenance page, a wrong path). The runner quarantines the subject
	// and deletes nothing; only the same answer on a run at least its
	// grace period later deletes its rows, as Forget does. A run in which
	// every subject (two or more) is gone fails instead: that is a wrong
	// base URL or path, not mass deletion.
	Gone(ctx context.Context, s Subject, reason string) error
	// Read says the run handed over every record of s it needs (Fan says
	// it of each subject it read to the end). A run that ends early
	// (partial, failed) leaves the subjects read for the next, which
	// reads the others over the same window and then moves the cursor as
	// the first would have: runs under faults converge instead of
	// starting over.
	Read(s Subject)
}

// JobLog keeps the states of an async stream's jobs (etl_state).
type JobLog interface {
	// Put records the state of job j. An active, lost or expired job is
	// written before Put returns, so that a crash right after creating a
	// job still knows it; a done job is written only once every record
	// the run handed over was loaded, like the cursor.
	Put(ctx context.Context, j Job) error
}

// Ledger is what a stream that reads our own warehouse (Stream.Reads) and
// hands rows on to its provider needs: the rows not handed on yet, and a
// ledger of what it handed on that is durable before the provider call it
// guards (FinGoal's enrichment submissions).
type Ledger interface {
	// Unsent calls fn with each row of Reads.Table not in the ledger, in
	// Reads.Key order, the values of Reads.Key then Reads.Columns as text
	// (dates YYYY-MM-DD, decimals with their scale, e.g. -12.4100). Rows
	// are read page by page as fn consumes them, so memory stays bounded
	// whatever the backlog; ledger rows written during the call do not
	// change what it returns.
	Unsent(ctx context.Context, fn func(row []string) error) error
	// Commit writes rec, rows of Reads.Ledger, now and returns once
	// ClickHouse accepted them, unlike Output.Records, which loads at the
	// end of the run. The callee does not retain rec.
	Commit(ctx context.Context, rec arrow.Record) error
	// Register enters subjects the run created at the provider (FinGoal
	// users it submitted transactions of) into the registry now, with
	// source "submission".
	Register(ctx context.Context, subs []Subject) error
	// Stalled says n records of the stream wait on an outcome no run can
	// learn (FinGoal transactions whose submission's answer was lost), and
	// why; the runner notes it in etl_runs.error and the daemon exports n
	// as finsync_stalled_records. The last call of a run counts.
	Stalled(ctx context.Context, n uint64, why string)
}

// Lookuper reads back a stream's own earlier output (Stream.ReadsOwn).
type Lookuper interface {
	// Lookup reads the rows the stream's runs (or its provider's webhooks)
	// wrote to q.Table, one of its own Tables, for the stream's provider
	// and the run's tenant (FINAL, so each key's latest row), and calls fn
	// with q.Columns as text (as Ledger.Unsent does), in no particular
	// order. fn runs while the query is open: it must not wait for
	// ClickHouse itself.
	Lookup(ctx context.Context, q Lookup, fn func(row []string) error) error
}

// Lookup is a read of a stream's own earlier output (Lookuper).
type Lookup struct {
	Table   transform.Table // one of the stream's Tables
	Columns []string
	// Where restricts each of its columns to the values listed (IN); a
	// column with no value matches nothing.
	Where map[string][]string
}

// Reads is a stream's input from our own warehouse instead of a provider:
// FinGoal enriches the transactions the other providers loaded. The stream
// still never sees ClickHouse; the runner reads for it (Ledger.Unsent).
//
// A row is unsent when Ledger holds no row for (the stream's provider, the
// run's tenant, its key) other than one whose status column is Released.
// The stream writes Ledger rows itself (Ledger.Commit) before it hands rows
// to the provider, which makes "sent at most once" survive a crash.
type Reads struct {
	Table transform.Table // read with FINAL; rows of the stream's own provider are left out
	// Key identifies a row of Table (a prefix of its natural key); rows come
	// ordered by it, so rows sharing a leading column arrive together.
	Key     []string
	Columns []string // further columns the stream needs
	Ledger  transform.Table
	// LedgerKey are Ledger's columns holding Key, in the same order; Ledger
	// also has provider, tenant and status columns.
	LedgerKey []string
	// Released is the status of a ledger row that does not count: the
	// submission certainly did not happen, so the row is unsent again.
	Released string
}

// Job statuses (etl_state's status column of a job).
const (
	JobActive  = "active"  // created at the provider, not collected yet
	JobDone    = "done"    // collected and loaded
	JobLost    = "lost"    // the provider no longer knows it; a new one is needed
	JobExpired = "expired" // its result is gone at the provider (past its lifetime)
)

// Job is an async job a stream started at a provider (finAPI jobId,
// FinGoal batch_request_id, a FinGoal tag-status guid), as etl_state keeps
// it. Params is what the collector needs to know about it later (the
// request it was created with).
type Job struct {
	ID         string
	Params     string
	Status     string
	CreatedAt  time.Time
	NextPollAt time.Time // zero: poll at once
}

// Stream is one provider dataset: "provider.dataset", e.g.
// fino.transactions. Each provider package returns its streams from one
// constructor; cmd/finsync holds the one list of providers.
//
// Every stream hands its records to an Output. What else it needs from
// the runner it declares here, and only then does its Request carry it:
// SubjectKind (Request.Subjects and Registry), Async (Jobs and JobLog),
// Reads (Ledger), ReadsOwn (Own).
type Stream struct {
	Name     string
	Provider string
	// Tables are the tables the stream writes, besides etl_rejects.
	Tables []transform.Table
	// Run extracts what req asks for, hands records to out and returns the
	// cursor the next run resumes from. It returns only after out accepted
	// every record; the runner writes the cursor once they are loaded.
	Run func(ctx context.Context, req Request, out Output) (cursor string, err error)
	// Backfill says the stream reads exactly Request.Window when its From
	// is set, whatever its cursor: `finsync backfill` can split a range
	// into windows. Snapshot streams (segments, analytics) cannot.
	Backfill bool
	// Reconciles says the stream honours Request.Reconcile: it is
	// incremental (a cursor, a lookback, subjects skipped for lack of news),
	// so late data can pass it by and a reconciliation can find it. Only
	// such a stream may have a reconcile schedule.
	Reconciles bool
	// Stats, if set, reports the provider client's counters; the runner
	// records the retries a run caused.
	Stats func() ClientStats

	// SubjectKind is the kind of registry subject the stream iterates
	// ("user", "process", ...), or "" for a tenant-level stream.
	SubjectKind string
	// Async says the stream starts async jobs at its provider (finAPI
	// segments, FinGoal batches and tag updates).
	Async bool
	// Reads, if set, is the stream's input from our own warehouse.
	Reads *Reads
	// ReadsOwn says the stream reads back its own earlier output.
	ReadsOwn bool
	// CheckParams, if set, checks the stream's params in the schedules
	// file; a stream without it takes none.
	CheckParams func(params map[string]string) []error
}

// Output receives what a run extracts. Records are borrowed: the callee
// retains what it keeps, the caller releases what it built.
//
// Every method of the optional parts (Registry, JobLog, Ledger, Lookuper)
// takes a context, first. Output's take none: what they are handed is
// loaded by the run's batches under the run's own context, also after the
// call returned, so a context per call could not govern it (Fan's workers
// hand over their last records once their own context ended).
type Output interface {
	Records(t transform.Table, rec arrow.Record) error
	Reject(r Reject) error
}

// Reject is a provider record that could not be transformed. It goes to
// etl_rejects with its raw payload (scrubbed of personal identifiers) and the
// reason; the rest of its page still loads.
type Reject struct {
	Table  string // the table it was bound for
	Key    string // the provider's id of the record, or "" if unknown
	Reason string
	Raw    []byte
}

// RawKey is the Key of a rejected record without an id of its own: a
// digest of its payload, the same every run, so that such rejects do not
// collapse into one etl_rejects row (its key is stream, run and key).
func RawKey(raw []byte) string {
	sum := sha256.Sum256(raw)
	return "raw-" + hex.EncodeToString(sum[:8])
}

// RejectKey digs the string field (the record's id) out of a record that
// did not decode, so its Reject has a stable Key ("" if even that fails).
func RejectKey(raw []byte, field string) string {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return ""
	}
	var id string
	json.Unmarshal(m[field], &id)
	return id
}

// SkipGone turns err, when it is the provider's 404 for subject s (it no
// longer knows it), into a skip of s saying why, so one stale registry
// entry does not fail the run for everybody. Any other error comes back
// naming the subject; nil stays nil.
func SkipGone(ctx context.Context, reg Registry, s Subject, err error, why string) error {
	var herr *HTTPError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &herr) && herr.Status == http.StatusNotFound:
		return reg.Skip(ctx, s, why)
	}
	return fmt.Errorf("%s %s: %w", s.Kind, s.ID, err)
}
