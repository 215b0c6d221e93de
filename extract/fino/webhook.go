package fino

import (
	"crypto/subtle"
	"encoding/json"
	"log/slog"
	"net/http"

	"github.com/finsync/finsync/extract"
)

// MaxWebhookBody is the largest webhook body the receiver reads; a larger
// one is refused with 413.
const MaxWebhookBody = extract.MaxWebhookBody

// EventUBASyncError is the one webhook event the docs name: a bank
// synchronisation failed, data.type CHALLENGE_REQUIRED meaning the user's
// consent expired (Webhooks).
const EventUBASyncError = "ubasyncerror"

// WebhookHandler receives finoOS webhooks. h.Subject is called with the user as a subject before
// the handler answers 2xx; the daemon passes a func that writes the registry.
//
// finoOS lets the customer choose the method, so POST and PUT are taken; the
// body is a [WebhookPayload] of at most [MaxWebhookBody] bytes. finoOS signs
// nothing: it echoes the configured secret in the body in plain text, which
// is compared with secret in constant time. An empty secret refuses every
// request (fail closed), so a receiver is never open by a missing setting.
//
// A payload with the right secret and a userID is recorded as
// extract.Subject{Provider: "fino", Tenant, Kind: "user", ID: userID,
// CorrelationID: correlationID}, the tenant taken from the FinoOS-Tenant-ID
// header, else from the body's tenantID. Every event is recorded the same
// way, whatever its name (assumption 26): the analysis-completed event, the
// pushes whose names the docs leave out, and ubasyncerror, whose user stays
// in the registry so a run can say why its data stops; ubasyncerror is also
// logged with its data.type. A payload without correlationID (as a sync
// error may be) is recorded with an empty one.
//
// Answers: 204 once h.Subject returned nil; 503 when it failed, so finoOS
// retries (it retries any answer above 299; recording is idempotent, so a
// repeat with the same X-Request-Id does no harm, assumption 27); and,
// recording nothing, 405 for another method, 413 for a body over the limit,
// 400 for malformed JSON or a missing userID, 401 for a wrong or missing
// secret. Neither the secret nor the body is ever logged.
func WebhookHandler(secret string, h extract.Hooks, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if secret == "" {
		log.Error("fino webhook: no secret configured; every webhook is refused")
	}
	want := []byte(secret)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l := log.With("request_id", r.Header.Get(headerRequestID), "remote", r.RemoteAddr)
		refuse := func(status int, reason string) {
			l.Warn("fino webhook refused", "status", status, "reason", reason)
			http.Error(w, reason, status)
		}
		body, status, reason := extract.ReadWebhookBody(w, r, http.MethodPost, http.MethodPut)
		if status != 0 {
			refuse(status, reason)
			return
		}
		var p WebhookPayload
		if err := json.Unmarshal(body, &p); err != nil {
			// The decoder's message may quote the body; it is not logged.
			refuse(http.StatusBadRequest, "malformed JSON")
			return
		}
		// With an empty configured secret the comparison fails for every
		// body, an empty secret in it included.
		if secret == "" || subtle.ConstantTimeCompare([]byte(p.Secret), want) != 1 {
			refuse(http.StatusUnauthorized, "wrong or missing secret")
			return
		}
		if p.UserID == "" {
			refuse(http.StatusBadRequest, "userID missing")
			return
		}
		tenant := r.Header.Get(headerWebhookTenant)
		if tenant == "" {
			tenant = p.TenantID
		}
		s := extract.Subject{Provider: "fino", Tenant: tenant, Kind: "user", ID: p.UserID, CorrelationID: p.CorrelationID}
		l = l.With("event", p.Event, "tenant", tenant, "user_id", p.UserID, "correlation_id", p.CorrelationID)
		if p.Event == EventUBASyncError {
			l.Warn("fino webhook: bank synchronisation failed; the user's data stops until it reconnects",
				"type", syncErrorType(p.Data))
		}
		if err := h.Subject(r.Context(), s); err != nil {
			l.Error("fino webhook: recording the subject failed; finoOS will retry", "err", err)
			http.Error(w, "recording failed, retry later", http.StatusServiceUnavailable)
			return
		}
		l.Info("fino webhook recorded")
		w.WriteHeader(http.StatusNoContent)
	})
}

// syncErrorType is data.type of a ubasyncerror event (CHALLENGE_REQUIRED:
// the consent expired), or "" when there is none. Only a short value is
// returned, so nothing the provider put there reaches the log in bulk.
func syncErrorType(data json.RawMessage) string {
	var d struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(data, &d) != nil || len(d.Type) > 64 {
		return ""
	}
	return d.Type
}
