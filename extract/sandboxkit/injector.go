package sandboxkit

import (
	"bytes"
	"cmp"
	"context"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Knobs are per-request fault probabilities (0..1). A fault never sticks to
// a request: a retry gets the right answer, except Malformed, which is a
// property of a record (the same records are malformed every time).
type Knobs struct {
	Seed        uint64
	RateLimit   float64       // 429 with Retry-After
	RetryAfter  int           // seconds sent in Retry-After
	ServerError float64       // 500 or 503
	Latency     time.Duration // added to every request
	TokenExpiry float64       // the presented token is declared expired: 401
	Truncated   float64       // a success body cut in half (Content-Length still announces all of it)
	Malformed   float64       // share of records always served schema-invalid
	// Duplicate: a page repeats the last record of the page before. Only a
	// sandbox that pages applies it (fino's categorizations); the others
	// ignore the draw.
	Duplicate float64
	// Slow is the share of requests answered SlowDelay late (default
	// 300ms): slow pages, on top of Latency.
	Slow      float64
	SlowDelay time.Duration

	// Hostile pages (finsync issue 23 #1), what a broken or malicious
	// provider could send to exhaust memory; only a sandbox that pages
	// records applies them (fino's categorizations, on each user's first
	// page). HugeField > 0 adds a record whose purpose is that many bytes;
	// EndlessField ends the page with a record whose purpose never ends;
	// EndlessArray adds records without end. The sandbox streams them
	// without holding them, until the client hangs up.
	HugeField    int64
	EndlessField bool
	EndlessArray bool
}

// Hostile says whether any hostile-page knob is set.
func (k Knobs) Hostile() bool { return k.HugeField > 0 || k.EndlessField || k.EndlessArray }

// WriteRepeat writes n bytes c to w (n < 0: until a write fails), in
// chunks, without holding them.
func WriteRepeat(w io.Writer, c byte, n int64) error {
	chunk := bytes.Repeat([]byte{c}, 64<<10)
	for n != 0 {
		m := int64(len(chunk))
		if n > 0 {
			m = min(m, n)
			n -= m
		}
		if _, err := w.Write(chunk[:m]); err != nil {
			return err
		}
	}
	return nil
}

// Counts are the faults injected so far.
type Counts struct {
	RateLimited, ServerErrors, TokensExpired, Malformed, Truncated, Duplicated, Slowed int64
}

// Injector draws and applies faults. Safe for concurrent use.
type Injector struct {
	knobs atomic.Pointer[Knobs] // Set may change them while requests run

	mu    sync.Mutex
	draws *rand.Rand

	rateLimited, serverErrors, expired, malformed, truncated, duplicated, slowed atomic.Int64
}

// NewInjector returns an Injector for k.
func NewInjector(k Knobs) *Injector {
	in := &Injector{draws: rand.New(rand.NewPCG(k.Seed, 0x5eed))}
	in.knobs.Store(&k)
	return in
}

// Set changes the knobs from the next request on (a soak test stops the
// faults at its end); the sequence of draws goes on where it was.
func (in *Injector) Set(k Knobs) { in.knobs.Store(&k) }

// Knobs returns the knobs in force.
func (in *Injector) Knobs() Knobs { return *in.knobs.Load() }

// Draw is the faults one request meets.
type Draw struct {
	ExpireToken bool // the sandbox should refuse the token with 401 (and call TokenExpired)
	Truncate    bool // the sandbox should serve the body with WriteBody
	Duplicate   bool // a paging sandbox should repeat a record (and call Duplicated)
	rateLimit   bool
	slow        bool
	serverError bool
	status      int
}

// Begin draws the faults of one request and applies latency, 429 and 5xx.
// It returns false when it answered the request itself (or the client
// left during the latency); writeError writes a provider-shaped error.
func (in *Injector) Begin(w http.ResponseWriter, r *http.Request, writeError func(w http.ResponseWriter, status int, msg string)) (Draw, bool) {
	k := in.knobs.Load()
	d := in.draw(k)
	delay := k.Latency
	if d.slow {
		in.slowed.Add(1)
		delay += cmp.Or(k.SlowDelay, 300*time.Millisecond)
	}
	if delay > 0 && !Sleep(r.Context(), delay) {
		return d, false
	}
	switch {
	case d.rateLimit:
		in.rateLimited.Add(1)
		w.Header().Set("Retry-After", strconv.Itoa(k.RetryAfter))
		writeError(w, http.StatusTooManyRequests, "rate limit exceeded")
		return d, false
	case d.serverError:
		in.serverErrors.Add(1)
		writeError(w, d.status, "injected server error")
		return d, false
	}
	return d, true
}

// draw draws every knob on every request, so the sequence of faults
// depends only on the seed and the order of requests.
func (in *Injector) draw(k *Knobs) Draw {
	in.mu.Lock()
	defer in.mu.Unlock()
	r := in.draws
	d := Draw{
		rateLimit:   r.Float64() < k.RateLimit,
		serverError: r.Float64() < k.ServerError,
		ExpireToken: r.Float64() < k.TokenExpiry,
		Truncate:    r.Float64() < k.Truncated,
		Duplicate:   r.Float64() < k.Duplicate,
		status:      http.StatusInternalServerError,
	}
	if r.IntN(2) == 0 {
		d.status = http.StatusServiceUnavailable
	}
	// Drawn only when asked for, so that the other knobs' sequences stay
	// what they were before Slow existed.
	if k.Slow > 0 {
		d.slow = r.Float64() < k.Slow
	}
	return d
}

// TokenExpired counts a live token the sandbox refused because the draw
// said ExpireToken. The sandbox counts it, not Begin, because only the
// sandbox knows whether the request carried a token to expire.
func (in *Injector) TokenExpired() { in.expired.Add(1) }

// Duplicated counts a record the sandbox repeated because the draw said
// Duplicate.
func (in *Injector) Duplicated() { in.duplicated.Add(1) }

// WriteBody writes a 200 JSON body, cut in half if d says so.
func (in *Injector) WriteBody(w http.ResponseWriter, d Draw, body []byte) {
	in.WriteBodyStatus(w, d, http.StatusOK, body)
}

// WriteBodyStatus is WriteBody for another success status (201).
func (in *Injector) WriteBodyStatus(w http.ResponseWriter, d Draw, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if d.Truncate && len(body) > 1 {
		in.truncated.Add(1)
		body = body[:len(body)/2]
	}
	w.Write(body)
}

// Malformed tells whether the Malformed knob corrupts the record with this
// key; it depends only on the seed and the key, so it is the same every
// time.
func (in *Injector) Malformed(key string) bool {
	k := in.knobs.Load()
	p := k.Malformed
	if p <= 0 {
		return false
	}
	h := fnv.New64a()
	h.Write([]byte(key))
	return float64(rand.NewPCG(k.Seed, h.Sum64()).Uint64()>>11)/(1<<53) < p
}

// Malform is Malformed for a record about to be served: a true answer is
// counted. Malformed alone is for listing what a run must reject.
func (in *Injector) Malform(key string) bool {
	if !in.Malformed(key) {
		return false
	}
	in.malformed.Add(1)
	return true
}

// Counts returns the faults injected so far.
func (in *Injector) Counts() Counts {
	return Counts{
		RateLimited:   in.rateLimited.Load(),
		ServerErrors:  in.serverErrors.Load(),
		TokensExpired: in.expired.Load(),
		Malformed:     in.malformed.Load(),
		Truncated:     in.truncated.Load(),
		Duplicated:    in.duplicated.Load(),
		Slowed:        in.slowed.Load(),
	}
}

// Sleep waits d or until ctx ends; it reports whether d passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
