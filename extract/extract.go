// Package extract holds what every provider extractor shares: the request
// types below (what one run of a stream asks for) and the provider HTTP
// client (token cache, rate limit, retries with backoff, async-job polling,
// paging, streaming JSON).
//
// An extractor knows its provider's API and nothing of ClickHouse.
package extract

import (
	"context"
	"time"

	"github.com/apache/arrow/go/v17/arrow"

	"github.com/finsync/finsync/transform"
)

// Window is the half-open time range [From, To) a run covers, in UTC.
type Window struct{ From, To time.Time }

// Subject is one entry of the subjects registry: a provider-side user,
// process or batch that per-subject streams iterate.
type Subject struct {
	Provider string
	Tenant   string
	Kind     string // "user", "process", "batch", ...
	ID       string
	// CorrelationID is the provider's job handle that made the subject
	// known (finoOS correlation id, FinGoal batch_request_id), if any.
	CorrelationID string
	// FirstSeen is when the subject entered the registry: a stream reads
	// the whole history of a subject newer than its cursor.
	FirstSeen time.Time
	// Status is the registry's status of the subject ("" = active,
	// "skipped", SubjectRevoked). A stream never extracts a revoked subject.
	Status string
}

// SubjectRevoked is the status of a subject whose data the provider deleted
// (consent revoked, deleted at the provider): its rows were deleted from
// the warehouse and it is never extracted again.
const SubjectRevoked = "revoked"

// Request is what one run of a stream asks an extractor for.
type Request struct {
	Tenant   string
	Window   Window
	Cursor   string // opaque; "" on the first run
	Subjects []Subject
	// Lineage goes on every row the run produces.
	Lineage transform.Lineage
}

// Stream is one provider dataset (DESIGN §2): "provider.dataset", e.g.
// fino.transactions. Each provider package returns its streams from one
// constructor; cmd/finsync holds the one list of providers.
type Stream struct {
	Name     string
	Provider string
	// Tables are the tables the stream writes, besides etl_rejects.
	Tables []transform.Table
	// SubjectKind is the kind of registry subject the stream iterates
	// ("user", "process", ...), or "" for a tenant-level stream.
	SubjectKind string
	// Run extracts what req asks for, hands records to out and returns the
	// cursor the next run resumes from. It returns only after out accepted
	// every record; the runner writes the cursor once they are loaded.
	Run func(ctx context.Context, req Request, out Output) (cursor string, err error)
	// Stats, if set, reports the provider client's counters; the runner
	// records the retries a run caused.
	Stats func() ClientStats
}

// Output receives what a run extracts. Records are borrowed: the callee
// retains what it keeps, the caller releases what it built.
type Output interface {
	Records(t transform.Table, rec arrow.Record) error
	Reject(r Reject) error
	// Skip says a subject could not be extracted for a lasting reason (the
	// provider no longer knows it); the run goes on with the others.
	Skip(s Subject, reason string) error
	// Forget says the provider deleted a subject's data (consent revoked,
	// deleted at the provider). Once the run's records are loaded, the
	// runner deletes every row of that subject from the warehouse, records
	// that it did, and marks it SubjectRevoked so no run extracts it again.
	Forget(s Subject, reason string) error
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
