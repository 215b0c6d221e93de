package extract

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/finsync/finsync/extract/pii"
)

// RetryAfter says the call may succeed if repeated after Wait. The run
// ends as a partial success and the next run resumes from its cursor,
// instead of one rate limit failing the whole sync.
type RetryAfter struct {
	Wait time.Duration
	Err  error
}

func (e *RetryAfter) Error() string {
	return fmt.Sprintf("retry after %s: %v", e.Wait.Round(time.Millisecond), e.Err)
}

func (e *RetryAfter) Unwrap() error { return e.Err }

// Permanent says repeating the call will not help (bad request, missing
// scope, unknown resource, credentials refused).
type Permanent struct{ Err error }

func (e *Permanent) Error() string { return "permanent: " + e.Err.Error() }

func (e *Permanent) Unwrap() error { return e.Err }

// Inconsistent says the provider's answer contradicts itself or what
// finsync recorded (a result dated weeks before the job that made it, fewer
// users than the total announced). The run fails, or ends partial when Err
// is a RetryAfter, and the daemon counts it by Check in
// finsync_inconsistent_results_total, so an operator sees it among the
// ordinary partial runs.
type Inconsistent struct {
	Check string // short and fixed, e.g. "result_date": the metric's label
	Err   error
}

func (e *Inconsistent) Error() string { return e.Err.Error() }

func (e *Inconsistent) Unwrap() error { return e.Err }

// HTTPError is a response with a status the caller did not accept.
type HTTPError struct {
	Status int
	Body   []byte // first 4 KiB, scrubbed (pii.ScrubBody); nil for calls made with Sensitive
	Method string
	URL    string // without credentials
}

const errBodyMax = 4 << 10

func (e *HTTPError) Error() string {
	msg := fmt.Sprintf("%s %s: %d %s", e.Method, e.URL, e.Status, http.StatusText(e.Status))
	if len(e.Body) > 0 {
		// Enough of the provider's error message to act on, not a page of
		// HTML; scrubbed again for an HTTPError built elsewhere.
		b := pii.ScrubBody(e.Body)
		if len(b) > 256 {
			b = b[:256]
		}
		msg += fmt.Sprintf(": %q", b)
	}
	return msg
}

// IsRetryable reports whether err says to try again later: a RetryAfter
// anywhere in its chain. Context errors and Permanent are not retryable.
func IsRetryable(err error) bool {
	var p *Permanent
	if errors.As(err, &p) {
		return false
	}
	var ra *RetryAfter
	return errors.As(err, &ra)
}

// Unanswered reports whether err says the provider never gave a usable
// answer: a 429 or 5xx, or no HTTP answer at all (connection refused,
// reset, timed out). A context's own end is not that.
func Unanswered(err error) bool {
	var herr *HTTPError
	if errors.As(err, &herr) {
		return retryableStatus(herr.Status)
	}
	var uerr *url.Error
	return errors.As(err, &uerr) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// retryableStatus lists the answers that mean "not now" rather than "no".
func retryableStatus(code int) bool {
	switch code {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}
