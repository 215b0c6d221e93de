package extract

import (
	"context"
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
// The first error stops the other workers and is returned; records handed
// to out before it stay handed (the runner loads them, the cursor stays).
func Fan[W any](ctx context.Context, subjects []Subject, n int, out Output,
	start func() W, each func(ctx context.Context, w W, s Subject, out Output) error, finish func(w W, out Output) error) error {
	n = max(1, min(n, len(subjects)))
	shared := &lockedOutput{out: out}
	g, ctx := errgroup.WithContext(ctx)
	var next atomic.Int64
	for range n {
		g.Go(func() (err error) {
			w := start()
			defer func() {
				if ferr := finish(w, shared); err == nil {
					err = ferr
				}
			}()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(subjects) || ctx.Err() != nil {
					return ctx.Err()
				}
				if err := each(ctx, w, subjects[i], shared); err != nil {
					return err
				}
			}
		})
	}
	return g.Wait()
}

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
