package extract

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// ErrPollDeadline ends a Poll whose job did not finish within its
// Deadline. finoOS answers 404 both for "still running" and for a
// cancelled connection, so only a deadline tells the two apart.
var ErrPollDeadline = errors.New("extract: async job not done by the poll deadline")

// PollOptions paces Poll. Zero values mean the defaults noted.
type PollOptions struct {
	Initial  time.Duration // first wait; default 500ms (finoOS: at most 2 requests/s at first)
	Factor   float64       // growth per wait; default 2
	Max      time.Duration // longest wait before jitter; default 30s
	Deadline time.Duration // give up after this long; 0: only when ctx ends
	// Wake, when it receives, ends the current wait at once: a provider's
	// "job ready" callback makes the next check immediate.
	Wake <-chan struct{}
}

// Poll calls check at once and then after growing waits until it reports
// done or fails. Each wait is the current interval plus up to 20% jitter
// (never less, so Initial is a floor on the spacing), so many jobs started
// together drift apart. A check error is returned as is; ctx ending returns
// ctx.Err(); running out of Deadline returns ErrPollDeadline, wrapped with
// the time spent. A last check is made when the Deadline is reached.
func Poll(ctx context.Context, p PollOptions, check func(ctx context.Context) (done bool, err error)) error {
	if p.Initial <= 0 {
		p.Initial = 500 * time.Millisecond
	}
	if p.Factor < 1 {
		p.Factor = 2
	}
	if p.Max <= 0 {
		p.Max = 30 * time.Second
	}
	p.Max = max(p.Max, p.Initial)

	start := time.Now()
	interval := p.Initial
	for checks := 1; ; checks++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		done, err := check(ctx)
		if err != nil {
			return err
		}
		if done {
			return nil
		}

		wait := interval + rand.N(interval/5+1)
		if p.Deadline > 0 {
			left := p.Deadline - time.Since(start)
			if left <= 0 {
				return fmt.Errorf("%w: %d checks in %s", ErrPollDeadline, checks, time.Since(start).Round(time.Millisecond))
			}
			wait = min(wait, left)
		}
		if err := sleepOrWake(ctx, wait, p.Wake); err != nil {
			return err
		}
		interval = min(time.Duration(float64(interval)*p.Factor), p.Max)
	}
}

// sleepOrWake waits for d, for wake to receive (never, if nil), or for ctx
// to end.
func sleepOrWake(ctx context.Context, d time.Duration, wake <-chan struct{}) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-wake:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Wakes lets a provider's webhook or callback wake the run polling the
// async job it announces (PollOptions.Wake), so the run checks at once
// instead of at its next interval. The zero value is ready to use; safe for
// concurrent use.
type Wakes struct {
	mu      sync.Mutex
	waiting map[string]chan struct{} // job id → wakes the run polling it
}

// Wait registers the run polling job id and returns its Wake channel; the
// run calls Unwait when it stops polling.
func (w *Wakes) Wait(id string) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.waiting == nil {
		w.waiting = map[string]chan struct{}{}
	}
	// Buffered: a wake that comes between two checks is not lost.
	ch := make(chan struct{}, 1)
	w.waiting[id] = ch
	return ch
}

// Unwait forgets the run polling job id.
func (w *Wakes) Unwait(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.waiting, id)
}

// Ready wakes the run polling job id, if any, and reports whether there was
// one: if not, the caller decides whether to start a run for the job.
func (w *Wakes) Ready(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	ch, ok := w.waiting[id]
	if ok {
		select {
		case ch <- struct{}{}:
		default: // a wake is already pending
		}
	}
	return ok
}
