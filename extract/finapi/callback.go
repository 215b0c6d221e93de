package finapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"

	"github.com/finsync/finsync/extract"
)

// CallbackHandler receives finAPI's "job ready" calls at Config.CallbackURL
// (POST, JSON {"jobId", "segmentType"}: assumption 13; the tenant comes from
// the query the URL was created with).
//
// A callback is only a hint: the collector trusts nothing but the GET of
// the job, and a callback is unsigned. If a run is polling the job it
// checks at once. Otherwise the job must be one finsync is waiting for:
// h.JobStatus must say it is active in etl_state for that
// stream and tenant, and only then is h.Trigger called (the daemon's:
// a triggered run of the stream, which resumes the job and never creates
// one). A callback for an unknown, done or lost job, or without h.JobStatus to ask,
// starts nothing: a forged or stale call can neither create nor bill a job.
// The handler answers 204, or 503 when etl_state could not be read; h.Trigger
// must not block.
func CallbackHandler(a *API, h extract.Hooks) http.Handler {
	log := a.cfg.Logger
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		var cb Callback
		body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		if err == nil && len(body) > 0 {
			err = json.Unmarshal(body, &cb)
		}
		if err != nil {
			http.Error(w, "body is not a finAPI callback: "+err.Error(), http.StatusBadRequest)
			return
		}
		if cb.SegmentType == "" {
			cb.SegmentType = r.URL.Query().Get("segmentType")
		}
		tenant := r.URL.Query().Get("tenant")
		var seg Segment
		for _, s := range Segments() {
			if s.Type == cb.SegmentType {
				seg = s
			}
		}
		if cb.JobID == "" || seg.Type == "" || tenant == "" {
			http.Error(w, "a callback needs jobId, a known segmentType and the tenant query parameter", http.StatusBadRequest)
			return
		}
		if a.Ready(cb.JobID) || h.JobStatus == nil || h.Trigger == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		status, err := h.JobStatus(r.Context(), seg.Stream, tenant, cb.JobID)
		if err != nil {
			log.Error("finAPI callback: cannot tell whether finsync waits for the job; polling will collect it", "job", cb.JobID, "err", err)
			http.Error(w, "cannot check the job now, retry later", http.StatusServiceUnavailable)
			return
		}
		if status != extract.JobActive {
			log.Info("finAPI callback for a job finsync is not waiting for: ignored", "segment", seg.Type, "tenant", tenant,
				"job", cb.JobID, "status", status)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h.Trigger(context.WithoutCancel(r.Context()), seg.Stream, tenant)
		w.WriteHeader(http.StatusNoContent)
	})
}
