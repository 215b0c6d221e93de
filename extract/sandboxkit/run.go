package sandboxkit

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// Runner is a sandbox's background work (analyses, timers, webhook
// deliveries): Close stops it and waits for it.
type Runner struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewRunner returns a Runner with nothing running.
func NewRunner() *Runner {
	ctx, cancel := context.WithCancel(context.Background())
	return &Runner{ctx: ctx, cancel: cancel}
}

// Context ends with Close.
func (r *Runner) Context() context.Context { return r.ctx }

// Go runs fn in a goroutine Close waits for.
func (r *Runner) Go(fn func()) { r.wg.Go(fn) }

// After runs fn after d, unless Close comes first.
func (r *Runner) After(d time.Duration, fn func()) {
	r.wg.Go(func() {
		if Sleep(r.ctx, d) {
			fn()
		}
	})
}

// Close ends the context and waits for the goroutines.
func (r *Runner) Close() {
	r.cancel()
	r.wg.Wait()
}

// Delivery posts webhook bodies, retrying until a 2xx answers.
type Delivery struct {
	Client   *http.Client
	Attempts int
	// Delay is the wait after failed attempt n (from 1) before the next.
	Delay func(attempt int) time.Duration
	// Header is sent besides Content-Type: application/json.
	Header map[string]string
	// Failed, if set, hears of each failed attempt.
	Failed func(attempt int, err error)
}

// Post posts body to url until a 2xx answers, the attempts are spent or
// ctx ends, and reports whether a 2xx answered.
func (dl Delivery) Post(ctx context.Context, url string, body []byte) bool {
	for attempt := 1; attempt <= dl.Attempts; attempt++ {
		if attempt > 1 && !Sleep(ctx, dl.Delay(attempt-1)) {
			return false
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			dl.failed(attempt, err)
			return false
		}
		req.Header.Set("Content-Type", "application/json")
		for k, v := range dl.Header {
			req.Header.Set(k, v)
		}
		resp, err := dl.Client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
				return true
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		dl.failed(attempt, err)
	}
	return false
}

func (dl Delivery) failed(attempt int, err error) {
	if dl.Failed != nil {
		dl.Failed(attempt, err)
	}
}
