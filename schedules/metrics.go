package schedules

import (
	"net/http"
	"runtime"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/finsync/finsync/load/clickhouse"
)

// Metrics are the daemon's Prometheus metrics, on a registry of their own
// (no global state).
type Metrics struct {
	reg          *prometheus.Registry
	runs         *prometheus.CounterVec
	rows         *prometheus.CounterVec
	rejects      *prometheus.CounterVec
	retries      *prometheus.CounterVec
	skipped      *prometheus.CounterVec
	running      *prometheus.GaugeVec
	lastSuccess  *prometheus.GaugeVec
	nextRun      *prometheus.GaugeVec
	runDuration  *prometheus.HistogramVec
	requests     *prometheus.HistogramVec
	rateWait     *prometheus.CounterVec
	insertTime   *prometheus.HistogramVec
	insertBytes  *prometheus.CounterVec
	insertRetry  *prometheus.CounterVec
	webhookCalls *prometheus.CounterVec
	stalled      *prometheus.GaugeVec
	quarantined  *prometheus.GaugeVec
	inconsistent *prometheus.CounterVec
	missed       *prometheus.CounterVec
	buildInfo    *prometheus.GaugeVec
}

// NewMetrics registers the metrics.
func NewMetrics() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	// Runs, rejects, retries, durations and successes are per tenant as
	// well: one tenant's credentials or data can fail while the others load.
	m.runs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "finsync_runs_total",
		Help: "Runs finished, by stream, tenant and status (success, partial, failed; abandoned: found still running past the stream's timeout, its process dead)."}, []string{"stream", "tenant", "status"})
	m.rows = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "finsync_rows_loaded_total",
		Help: "Rows ClickHouse accepted, by stream and table."}, []string{"stream", "table"})
	m.rejects = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "finsync_rejects_total",
		Help: "Records sent to etl_rejects, by stream and tenant."}, []string{"stream", "tenant"})
	m.retries = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "finsync_retries_total",
		Help: "Provider and ClickHouse retries, by stream and tenant."}, []string{"stream", "tenant"})
	m.skipped = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "finsync_ticks_skipped_total",
		Help: "Schedule ticks (or a tenant's run of one) skipped because the stream's previous run was still going, here or in another process."}, []string{"stream"})
	m.running = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "finsync_runs_in_flight",
		Help: "Runs in flight, by stream."}, []string{"stream"})
	m.lastSuccess = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "finsync_last_success_timestamp_seconds",
		Help: "When the stream's last successful run for the tenant finished (Unix time)."}, []string{"stream", "tenant"})
	m.nextRun = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "finsync_next_run_timestamp_seconds",
		Help: "When the stream runs next (Unix time)."}, []string{"stream"})
	m.runDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "finsync_run_duration_seconds",
		Help: "Run duration, by stream and tenant.", Buckets: []float64{0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600}}, []string{"stream", "tenant"})
	m.requests = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "finsync_provider_request_duration_seconds",
		Help:    "Provider HTTP requests (every attempt), by provider and status code (0: no answer).",
		Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}}, []string{"provider", "code"})
	m.rateWait = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "finsync_rate_limit_wait_seconds_total",
		Help: "Time provider calls waited on finsync's rate limit for the provider (FINSYNC_<PROVIDER>_RATE_LIMIT), by provider."}, []string{"provider"})
	m.insertTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "finsync_clickhouse_insert_duration_seconds",
		Help: "ClickHouse INSERTs, by table: the time each took with ClickHouse, retries included, " +
			"not the time a run's INSERT waited for the provider's records.",
		Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}}, []string{"table"})
	m.insertBytes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "finsync_clickhouse_insert_bytes_total",
		Help: "Bytes ClickHouse accepted (of the Arrow records inserted), by table."}, []string{"table"})
	m.insertRetry = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "finsync_clickhouse_insert_retries_total",
		Help: "ClickHouse INSERTs sent again after a transient error, by table."}, []string{"table"})
	m.webhookCalls = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "finsync_webhook_requests_total",
		Help: "Webhook and callback requests received, by provider and status code."}, []string{"provider", "code"})
	m.stalled = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "finsync_stalled_records",
		Help: "Records the last run of a stream left waiting on an outcome no run can learn (FinGoal transactions " +
			"pending: the answer to their submission was lost), by stream and tenant; see etl_runs.error."}, []string{"stream", "tenant"})
	m.quarantined = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "finsync_subjects_quarantined",
		Help: "Subjects in quarantine after the last run of a per-subject stream: the provider answered for them as if it did not know " +
			"them; their rows are deleted only if it still does after the grace period (subjects.status_detail), by stream and tenant."}, []string{"stream", "tenant"})
	m.inconsistent = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "finsync_inconsistent_results_total",
		Help: "Runs that ended on a provider answer contradicting itself or what finsync recorded (finAPI: result_date, " +
			"total_elements), by stream, tenant and check; see etl_runs.error."}, []string{"stream", "tenant", "check"})
	m.missed = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "finsync_reconcile_missed_rows_total",
		Help: "Rows reconciliation runs loaded whose natural key was not in the warehouse before: late data the stream's " +
			"incremental runs had missed, by stream and tenant; see etl_runs.error."}, []string{"stream", "tenant"})
	m.buildInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "finsync_build_info",
		Help: "1, labelled with finsync's version and the Go version it was built with."}, []string{"version", "goversion"})
	m.reg.MustRegister(m.runs, m.rows, m.rejects, m.retries, m.skipped, m.running, m.lastSuccess, m.nextRun,
		m.runDuration, m.requests, m.rateWait, m.insertTime, m.insertBytes, m.insertRetry, m.webhookCalls, m.stalled, m.quarantined, m.inconsistent, m.missed, m.buildInfo,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Start sets finsync_build_info and puts the jobs' counters at zero, for
// every tenant of each, so that rate() and increase() see a first failure
// as one (a series that appears at 1 has no increase).
func (m *Metrics) Start(version string, jobs []Job) {
	m.buildInfo.WithLabelValues(version, runtime.Version()).Set(1)
	for _, j := range jobs {
		s := j.Stream.Name
		for _, t := range j.Tenants {
			for _, status := range []string{clickhouse.RunSuccess, clickhouse.RunPartial, clickhouse.RunFailed, clickhouse.RunAbandoned} {
				m.runs.WithLabelValues(s, t, status)
			}
			m.rejects.WithLabelValues(s, t)
			m.retries.WithLabelValues(s, t)
			if j.Schedule.Reconcile != "" {
				m.missed.WithLabelValues(s, t)
			}
		}
		m.skipped.WithLabelValues(s)
		m.running.WithLabelValues(s)
		m.rateWait.WithLabelValues(j.Stream.Provider)
		for _, tb := range j.Stream.Tables {
			m.insertBytes.WithLabelValues(tb.Name)
			m.insertRetry.WithLabelValues(tb.Name)
		}
	}
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler { return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}) }

// observeRun counts a finished run.
func (m *Metrics) observeRun(r clickhouse.Run) {
	m.runs.WithLabelValues(r.Stream, r.Tenant, r.Status).Inc()
	for t, n := range r.Rows {
		m.rows.WithLabelValues(r.Stream, t).Add(float64(n))
	}
	m.rejects.WithLabelValues(r.Stream, r.Tenant).Add(float64(r.Rejects))
	m.retries.WithLabelValues(r.Stream, r.Tenant).Add(float64(r.Retries))
	m.runDuration.WithLabelValues(r.Stream, r.Tenant).Observe(r.FinishedAt.Sub(r.StartedAt).Seconds())
	if r.Status == clickhouse.RunSuccess {
		m.lastSuccess.WithLabelValues(r.Stream, r.Tenant).Set(float64(r.FinishedAt.Unix()))
	}
	if r.Quarantined >= 0 && r.Status != clickhouse.RunAbandoned {
		m.quarantined.WithLabelValues(r.Stream, r.Tenant).Set(float64(r.Quarantined))
	}
	if r.Stalled >= 0 {
		m.stalled.WithLabelValues(r.Stream, r.Tenant).Set(float64(r.Stalled))
	}
	if r.Inconsistent != "" {
		m.inconsistent.WithLabelValues(r.Stream, r.Tenant, r.Inconsistent).Inc()
	}
	if r.Reconcile {
		m.missed.WithLabelValues(r.Stream, r.Tenant).Add(float64(r.Missed))
	}
}

// SeedLastSuccess sets finsync_last_success_timestamp_seconds from the run
// history (State.LastSuccess: stream → tenant → time) at start-up, so that
// a restarted daemon does not look as if no stream ever succeeded. Only
// the jobs' tenants are seeded: a tenant no longer configured would look
// stale for ever. A run observed later wins.
func (m *Metrics) SeedLastSuccess(last map[string]map[string]time.Time, jobs []Job) {
	for _, j := range jobs {
		for _, t := range j.Tenants {
			if at, ok := last[j.Stream.Name][t]; ok {
				m.lastSuccess.WithLabelValues(j.Stream.Name, t).Set(float64(at.Unix()))
			}
		}
	}
}

// RateWaited returns what counts the provider's waits on its rate limit
// (extract.Setup.RateWaited).
func (m *Metrics) RateWaited(provider string) func(time.Duration) {
	c := m.rateWait.WithLabelValues(provider)
	return func(d time.Duration) { c.Add(d.Seconds()) }
}

// Inserted counts a ClickHouse INSERT (clickhouse.LoaderOptions.Observe).
func (m *Metrics) Inserted(in clickhouse.Inserted) {
	m.insertTime.WithLabelValues(in.Table).Observe(in.Duration.Seconds())
	m.insertBytes.WithLabelValues(in.Table).Add(float64(in.Bytes))
	m.insertRetry.WithLabelValues(in.Table).Add(float64(in.Retries))
}

// Transport wraps base so that every request to provider is timed and
// counted by status code.
func (m *Metrics) Transport(provider string, base http.RoundTripper) http.RoundTripper {
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		start := time.Now()
		resp, err := base.RoundTrip(req)
		code := "0"
		if err == nil {
			code = strconv.Itoa(resp.StatusCode)
		}
		m.requests.WithLabelValues(provider, code).Observe(time.Since(start).Seconds())
		return resp, err
	})
}

// Webhook wraps a provider's receiver so that its answers are counted.
func (m *Metrics) Webhook(provider string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(sw, r)
		m.webhookCalls.WithLabelValues(provider, strconv.Itoa(sw.code)).Inc()
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}
