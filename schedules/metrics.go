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
	webhookCalls *prometheus.CounterVec
	stalled      *prometheus.GaugeVec
	inconsistent *prometheus.CounterVec
	buildInfo    *prometheus.GaugeVec
}

// NewMetrics registers the metrics.
func NewMetrics() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.runs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "finsync_runs_total",
		Help: "Runs finished, by stream and status (success, partial, failed; abandoned: found still running past the stream's timeout, its process dead)."}, []string{"stream", "status"})
	m.rows = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "finsync_rows_loaded_total",
		Help: "Rows ClickHouse accepted, by stream and table."}, []string{"stream", "table"})
	m.rejects = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "finsync_rejects_total",
		Help: "Records sent to etl_rejects, by stream."}, []string{"stream"})
	m.retries = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "finsync_retries_total",
		Help: "Provider and ClickHouse retries, by stream."}, []string{"stream"})
	m.skipped = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "finsync_ticks_skipped_total",
		Help: "Schedule ticks skipped because the stream's previous run was still going."}, []string{"stream"})
	m.running = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "finsync_runs_in_flight",
		Help: "Runs in flight, by stream."}, []string{"stream"})
	m.lastSuccess = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "finsync_last_success_timestamp_seconds",
		Help: "When the stream's last successful run finished (Unix time)."}, []string{"stream"})
	m.nextRun = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "finsync_next_run_timestamp_seconds",
		Help: "When the stream runs next (Unix time)."}, []string{"stream"})
	m.runDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "finsync_run_duration_seconds",
		Help: "Run duration, by stream.", Buckets: []float64{0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600}}, []string{"stream"})
	m.requests = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "finsync_provider_request_duration_seconds",
		Help:    "Provider HTTP requests (every attempt), by provider and status code (0: no answer).",
		Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}}, []string{"provider", "code"})
	m.webhookCalls = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "finsync_webhook_requests_total",
		Help: "Webhook and callback requests received, by provider and status code."}, []string{"provider", "code"})
	m.stalled = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "finsync_stalled_records",
		Help: "Records the last run of a stream left waiting on an outcome no run can learn (FinGoal transactions " +
			"pending: the answer to their submission was lost), by stream and tenant; see etl_runs.error."}, []string{"stream", "tenant"})
	m.inconsistent = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "finsync_inconsistent_results_total",
		Help: "Runs that ended on a provider answer contradicting itself or what finsync recorded (finAPI: result_date, " +
			"total_elements), by stream, tenant and check; see etl_runs.error."}, []string{"stream", "tenant", "check"})
	m.buildInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "finsync_build_info",
		Help: "1, labelled with finsync's version and the Go version it was built with."}, []string{"version", "goversion"})
	m.reg.MustRegister(m.runs, m.rows, m.rejects, m.retries, m.skipped, m.running, m.lastSuccess, m.nextRun,
		m.runDuration, m.requests, m.webhookCalls, m.stalled, m.inconsistent, m.buildInfo,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Start sets finsync_build_info and puts every stream's counters at zero,
// so that rate() and increase() see a stream's first failure as one (a
// series that appears at 1 has no increase).
func (m *Metrics) Start(version string, streams []string) {
	m.buildInfo.WithLabelValues(version, runtime.Version()).Set(1)
	for _, s := range streams {
		for _, status := range []string{clickhouse.RunSuccess, clickhouse.RunPartial, clickhouse.RunFailed, clickhouse.RunAbandoned} {
			m.runs.WithLabelValues(s, status)
		}
		m.rejects.WithLabelValues(s)
		m.retries.WithLabelValues(s)
		m.skipped.WithLabelValues(s)
		m.running.WithLabelValues(s)
	}
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler { return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}) }

// observeRun counts a finished run.
func (m *Metrics) observeRun(r clickhouse.Run) {
	m.runs.WithLabelValues(r.Stream, r.Status).Inc()
	for t, n := range r.Rows {
		m.rows.WithLabelValues(r.Stream, t).Add(float64(n))
	}
	m.rejects.WithLabelValues(r.Stream).Add(float64(r.Rejects))
	m.retries.WithLabelValues(r.Stream).Add(float64(r.Retries))
	m.runDuration.WithLabelValues(r.Stream).Observe(r.FinishedAt.Sub(r.StartedAt).Seconds())
	if r.Status == clickhouse.RunSuccess {
		m.lastSuccess.WithLabelValues(r.Stream).Set(float64(r.FinishedAt.Unix()))
	}
	if r.Stalled >= 0 {
		m.stalled.WithLabelValues(r.Stream, r.Tenant).Set(float64(r.Stalled))
	}
	if r.Inconsistent != "" {
		m.inconsistent.WithLabelValues(r.Stream, r.Tenant, r.Inconsistent).Inc()
	}
}

// SeedLastSuccess sets finsync_last_success_timestamp_seconds from the run
// history (State.LastSuccess) at start-up, so that a restarted daemon does
// not look as if no stream ever succeeded. A run observed later wins.
func (m *Metrics) SeedLastSuccess(last map[string]map[string]time.Time) {
	for stream, tenants := range last {
		var latest time.Time
		for _, at := range tenants {
			if at.After(latest) {
				latest = at
			}
		}
		m.lastSuccess.WithLabelValues(stream).Set(float64(latest.Unix()))
	}
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
