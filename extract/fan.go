package extract

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow/go/v17/arrow"
	"golang.org/x/sync/errgroup"

	"github.com/finsync/finsync/transform"
)

// Fan calls each for every subject, on up to n workers at once: per-user
// APIs are latency-bound, and n requests in flight (under the client's rate
// limit) take about 1/n of the time. Every worker has state of its own
// (a record builder), made by start; finish hands on what it still holds
// and releases it, also after an error. The workers share out, one call at
// a time, so a full loader blocks them all (backpressure); the parts of
// the Request (Registry, ...) are safe for concurrent use themselves.
//
// A subject whose read ends retryable (its provider's faults outlasted the
// retries: extract.RetryAfter) does not stop the others: the rest are
// read, and Fan returns a RetryAfter naming how many were not, so the run
// loads what it read and ends partial, its cursor unmoved. Once failures
// reach failLimit of them the provider is taken for down and the others
// stop too. Any other error (the loader's, a context's, a Permanent)
// stops the workers at once and is returned; records handed to out before
// it stay handed (the runner loads them, the cursor stays).
//
// Fan tells reg (if set) of every subject it read to the end
// (Registry.Read), once the worker that read it handed on what it held
// (finish returned): a run that ends early resumes with the others.
func Fan[W any](ctx context.Context, subjects []Subject, reg Registry, n int, out Output,
	start func() W, each func(ctx context.Context, w W, s Subject, out Output) error, finish func(w W, out Output) error) error {
	n = max(1, min(n, len(subjects)))
	shared := &lockedOutput{out: out}
	g, ctx := errgroup.WithContext(ctx)
	var next atomic.Int64
	var mu sync.Mutex
	var failed []error // retryable, per subject
	limit := failLimit(len(subjects))
	for range n {
		g.Go(func() (err error) {
			w := start()
			var read []Subject // their records may still be in w
			defer func() {
				ferr := finish(w, shared)
				if err == nil {
					err = ferr
				}
				if ferr == nil && reg != nil {
					for _, s := range read {
						reg.Read(s)
					}
				}
			}()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(subjects) || ctx.Err() != nil {
					return ctx.Err()
				}
				err := each(ctx, w, subjects[i], shared)
				if err == nil {
					read = append(read, subjects[i])
					continue
				}
				if !IsRetryable(err) || ctx.Err() != nil {
					return err
				}
				mu.Lock()
				failed = append(failed, err)
				down := len(failed) >= limit
				mu.Unlock()
				if down {
					return errProviderDown
				}
			}
		})
	}
	err := g.Wait()
	if err != nil && err != errProviderDown {
		return err
	}
	if len(failed) == 0 {
		return nil
	}
	why := fmt.Sprintf("%d of %d subjects not read this run (the next run reads them again)", len(failed), len(subjects))
	if err == errProviderDown {
		why = fmt.Sprintf("%d of %d subjects failed: the provider is taken for down, the rest wait for the next run", len(failed), len(subjects))
	}
	return &RetryAfter{Err: fmt.Errorf("%s; first: %w", why, failed[0])}
}

// errProviderDown stops Fan's workers once too many subjects failed.
var errProviderDown = errors.New("too many subjects failed")

// failLimit is how many retryable subject failures Fan takes before it
// stops: a tenth of the subjects, at least 3.
func failLimit(subjects int) int { return max(3, subjects/10) }

// lockedOutput serializes the calls of Fan's workers.
type lockedOutput struct {
	mu  sync.Mutex
	out Output
}

func (l *lockedOutput) Records(t transform.Table, rec arrow.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.out.Records(t, rec)
}

func (l *lockedOutput) Reject(r Reject) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.out.Reject(r)
}
