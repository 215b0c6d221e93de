package finapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
)

// CallbackHandler receives finAPI's "job ready" calls at Config.CallbackURL
// (POST, JSON {"jobId", "segmentType"}: assumption 13; the tenant comes from
// the query the URL was created with).
//
// A callback is only a hint: the collector trusts nothing but the GET of
// the job, so an unsigned or forged call can at most cause an early poll.
// If a run is polling the job it checks at once; otherwise start is called
// (the daemon starts a run of the stream for the tenant, which resumes the
// job from etl_state). The handler answers 204 at once; start must not
// block.
func CallbackHandler(a *API, start func(ctx context.Context, stream, tenant string)) http.Handler {
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
		if !a.Ready(cb.JobID) && start != nil {
			start(context.WithoutCancel(r.Context()), seg.Stream, tenant)
		}
		w.WriteHeader(http.StatusNoContent)
	})
}
