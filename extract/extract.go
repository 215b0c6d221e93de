// Package extract holds what every provider extractor shares: the request
// types below (what one run of a stream asks for) and the provider HTTP
// client (token cache, rate limit, retries with backoff, async-job polling,
// paging, streaming JSON).
//
// An extractor knows its provider's API and nothing of ClickHouse.
package extract

import (
	"time"
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
}

// Request is what one run of a stream asks an extractor for.
type Request struct {
	Tenant   string
	Window   Window
	Cursor   string // opaque; "" on the first run
	Subjects []Subject
}
