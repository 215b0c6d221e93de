package fingoal

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"github.com/finsync/finsync/extract/fingoal/stringify"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/transform"
)

// SignatureHeader carries FinGoal's webhook signature.
const SignatureHeader = "X-Webhook-Verification"

// MaxWebhookBody is the largest webhook body read; larger ones get 413.
const MaxWebhookBody = 1 << 20

// Sign is the signature FinGoal sends for body: hex HMAC-SHA256 keyed with
// the client secret.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether sig signs body. FinGoal's docs compute the HMAC
// over JSON.stringify(JSON.parse(body)), which differs from the bytes sent
// whenever the sender's JSON is spelled otherwise (whitespace, 10.00 for
// 10, \u00e9 for é, a repeated key); so exactly two messages are accepted:
//
//  1. the raw body as received, byte for byte;
//  2. stringify.Canonical(body): JSON.stringify(JSON.parse(body)) computed as
//     JavaScript does (see Canonical), when the body is JSON.
//
// sig is hex, either case; the comparison is hmac.Equal (constant time).
// An empty secret verifies nothing.
func Verify(secret string, body []byte, sig string) bool {
	got, err := hex.DecodeString(strings.TrimSpace(sig))
	if secret == "" || err != nil || len(got) != sha256.Size {
		return false
	}
	mac := func(b []byte) []byte {
		m := hmac.New(sha256.New, []byte(secret))
		m.Write(b)
		return m.Sum(nil)
	}
	if hmac.Equal(got, mac(body)) {
		return true
	}
	c, err := stringify.Canonical(body)
	return err == nil && hmac.Equal(got, mac(c))
}

// WebhookConfig is what the receiver does with verified webhooks. The
// daemon fills the funcs with writers to ClickHouse (schedules.RecordSubject,
// schedules.RecordJob, a loader); each returns once the data is stored.
type WebhookConfig struct {
	Secret string // the client secret, or a webhook secret of its own
	// Tenant is the tenant of a webhook without a ?tenant= query parameter;
	// default the API's first tenant.
	Tenant string
	API    *API // wakes a run polling an enriched batch; may be nil
	// Hooks store what the webhooks say: batches and users as subjects
	// (Subject), tag-status guids as active jobs of fingoal.user_tags
	// (Job), user tags and finsights rows at once (Insert, Version);
	// JobStatus tells whether a batch is one of fingoal.enrichment's jobs,
	// and Trigger, if set, starts a run that collects it (it must not block).
	extract.Hooks
	Logger *slog.Logger
	Now    func() time.Time
}

// WebhookHandler receives FinGoal's four webhooks at one URL and tells them
// apart by their fields: batch_request_id (enrichment complete), guid (tag
// status), userTags (user tags), finsights or a single finsight object (new
// recommendations). Only POST; the body must carry a valid signature (see
// Verify) or it is refused with 401 (400 without the header, as the docs'
// sample does) and nothing is recorded. Then:
//   - enrichment complete: the batch enters the registry (kind "batch"); a
//     run polling it checks at once (API.Ready); otherwise, when it is an
//     active job of fingoal.enrichment in etl_state, Trigger starts a run
//     that collects it now (a triggered run submits nothing). A batch
//     etl_state does not know is one whose submission's answer was lost: it
//     is adopted as an active job (AdoptedParams), and collecting it marks
//     its pending transactions submitted;
//   - tag status: the guid becomes an active job of fingoal.user_tags, and
//     Trigger starts a run that fetches it from /users/tags/{guid} now,
//     well within the 24 hours FinGoal keeps it (or the next scheduled run
//     does, without Trigger);
//   - user tags: the created/deleted tags land in user_tags;
//   - finsights: the recommendations land in insights.
//
// Answers 204 once stored, 503 when storing failed (FinGoal may retry).
func WebhookHandler(cfg WebhookConfig) http.Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Tenant == "" && cfg.API != nil {
		cfg.Tenant = cfg.API.cfg.Tenants[0]
	}
	if cfg.Version == nil {
		cfg.Version = func() uint64 { return uint64(time.Now().UnixNano()) }
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log := cfg.Logger.With("remote", r.RemoteAddr)
		refuse := func(status int, reason string) {
			log.Warn("fingoal webhook refused", "status", status, "reason", reason)
			http.Error(w, reason, status)
		}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			refuse(http.StatusMethodNotAllowed, "POST only")
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxWebhookBody))
		if err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				refuse(http.StatusRequestEntityTooLarge, "body larger than 1 MiB")
				return
			}
			refuse(http.StatusBadRequest, "reading the body failed")
			return
		}
		sig := r.Header.Get(SignatureHeader)
		if sig == "" {
			refuse(http.StatusBadRequest, "no "+SignatureHeader+" header")
			return
		}
		if !Verify(cfg.Secret, body, sig) {
			refuse(http.StatusUnauthorized, "signature does not match the body")
			return
		}
		var shape map[string]json.RawMessage
		if err := json.Unmarshal(body, &shape); err != nil {
			refuse(http.StatusBadRequest, "body is not a JSON object")
			return
		}
		tenant := r.URL.Query().Get("tenant")
		if tenant == "" {
			tenant = cfg.Tenant
		}
		ctx := r.Context()
		var status int
		var reason string
		switch {
		case shape["batch_request_id"] != nil:
			status, reason = cfg.enrichment(ctx, tenant, body)
		case shape["guid"] != nil:
			status, reason = cfg.tagStatus(ctx, tenant, body)
		case shape["userTags"] != nil:
			status, reason = cfg.userTags(ctx, tenant, body)
		case shape["finsights"] != nil || shape["uniqueId"] != nil || shape["finsight_id"] != nil:
			status, reason = cfg.finsights(ctx, tenant, body, shape["finsights"] != nil)
		default:
			status, reason = http.StatusBadRequest, "not a FinGoal webhook this receiver knows"
		}
		if status >= 500 {
			log.Error("fingoal webhook: storing failed; FinGoal may retry", "err", reason)
			http.Error(w, "storing failed, retry later", status)
			return
		}
		if status >= 400 {
			refuse(status, reason)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

func (cfg WebhookConfig) enrichment(ctx context.Context, tenant string, body []byte) (int, string) {
	var p EnrichmentWebhook
	if json.Unmarshal(body, &p) != nil || p.BatchRequestID == "" {
		return http.StatusBadRequest, "batch_request_id must be a non-empty string"
	}
	if cfg.Subject != nil {
		if err := cfg.Subject(ctx, extract.Subject{Provider: provider, Tenant: tenant, Kind: "batch", ID: p.BatchRequestID,
			CorrelationID: p.BatchRequestID}); err != nil {
			return http.StatusServiceUnavailable, err.Error()
		}
	}
	if cfg.API != nil && cfg.API.Ready(p.BatchRequestID) {
		return http.StatusNoContent, "" // the run polling it checks now
	}
	if cfg.JobStatus == nil {
		cfg.Logger.Info("fingoal webhook: batch enriched; the next fingoal.enrichment run collects it", "batch_request_id", p.BatchRequestID)
		return http.StatusNoContent, ""
	}
	status, err := cfg.JobStatus(ctx, StreamEnrichment, tenant, p.BatchRequestID)
	if err != nil {
		return http.StatusServiceUnavailable, err.Error()
	}
	if status == "" && cfg.Job != nil {
		// FinGoal signed it, so the batch is ours, yet etl_state does not
		// know it: a submission whose answer was lost, its transactions
		// pending. Adopted as a job, collecting it recovers them.
		j := extract.Job{ID: p.BatchRequestID, Params: AdoptedParams, Status: extract.JobActive, CreatedAt: cfg.Now().UTC().Truncate(time.Second)}
		if err := cfg.Job(ctx, StreamEnrichment, tenant, j); err != nil {
			return http.StatusServiceUnavailable, err.Error()
		}
		cfg.Logger.Warn("fingoal webhook: enrichment of a batch etl_state did not know (its submission's answer was lost); adopted",
			"batch_request_id", p.BatchRequestID, "tenant", tenant)
		status = extract.JobActive
	}
	if status != extract.JobActive {
		cfg.Logger.Info("fingoal webhook: enrichment of a batch finsync does not wait for", "batch_request_id", p.BatchRequestID,
			"tenant", tenant, "status", status)
		return http.StatusNoContent, ""
	}
	if cfg.Trigger != nil {
		cfg.Trigger(context.WithoutCancel(ctx), StreamEnrichment, tenant)
	}
	return http.StatusNoContent, ""
}

func (cfg WebhookConfig) tagStatus(ctx context.Context, tenant string, body []byte) (int, string) {
	var p TagStatusWebhook
	if json.Unmarshal(body, &p) != nil || p.GUID == "" {
		return http.StatusBadRequest, "guid must be a non-empty string"
	}
	if cfg.Job == nil {
		return http.StatusServiceUnavailable, "no job recorder configured"
	}
	j := extract.Job{ID: p.GUID, Params: `{"source":"tag status webhook"}`, Status: extract.JobActive, CreatedAt: cfg.Now().UTC().Truncate(time.Second)}
	if err := cfg.Job(ctx, StreamUserTags, tenant, j); err != nil {
		return http.StatusServiceUnavailable, err.Error()
	}
	if cfg.Trigger != nil {
		cfg.Trigger(context.WithoutCancel(ctx), StreamUserTags, tenant)
	}
	return http.StatusNoContent, ""
}

func (cfg WebhookConfig) lineage(tenant string) transform.Lineage {
	now := cfg.Now().UTC().Truncate(time.Second)
	return transform.Lineage{Provider: provider, Tenant: tenant, RunID: "webhook-" + now.Format("20060102T150405Z"),
		ExtractedAt: now, Version: cfg.Version()}
}

func (cfg WebhookConfig) userTags(ctx context.Context, tenant string, body []byte) (int, string) {
	var p UserTagsWebhook
	if err := json.Unmarshal(body, &p); err != nil || p.UserTags.UID == "" {
		return http.StatusBadRequest, "userTags must be an object with uid, created and deleted"
	}
	if cfg.Insert == nil {
		return http.StatusServiceUnavailable, "no loader configured"
	}
	w := NewTagsWriter(memory.DefaultAllocator, cfg.lineage(tenant))
	defer w.Release()
	if err := w.AddTagUpdate(p.UserTags, "", cfg.Now()); err != nil {
		return http.StatusBadRequest, err.Error()
	}
	return cfg.load(ctx, transform.UserTags, w)
}

func (cfg WebhookConfig) finsights(ctx context.Context, tenant string, body []byte, list bool) (int, string) {
	items := []json.RawMessage{body}
	if list {
		var p FinsightsWebhook
		if err := json.Unmarshal(body, &p); err != nil {
			return http.StatusBadRequest, "finsights must be an array of objects"
		}
		items = p.Finsights
		for i := range items {
			items[i] = extract.WithWrapper(items[i], p.Extra)
		}
	}
	if cfg.Insert == nil {
		return http.StatusServiceUnavailable, "no loader configured"
	}
	w := NewFinsightsWriter(memory.DefaultAllocator, cfg.lineage(tenant))
	defer w.Release()
	for _, raw := range items {
		if rej, ok := w.AddFinsight(raw); !ok {
			// All or nothing: a sender told 4xx does not retry half of it.
			return http.StatusBadRequest, rej.Reason
		}
	}
	return cfg.load(ctx, transform.Insights, w)
}

func (cfg WebhookConfig) load(ctx context.Context, t transform.Table, w *Writer) (int, string) {
	if w.Len() == 0 {
		return http.StatusNoContent, ""
	}
	rec := w.Record()
	defer rec.Release()
	if err := cfg.Insert(ctx, t, rec); err != nil {
		return http.StatusServiceUnavailable, err.Error()
	}
	return http.StatusNoContent, ""
}
