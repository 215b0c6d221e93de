package fimento

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"regexp"
	"slices"

	"github.com/finsync/finsync/extract"
)

// MaxWebhookBody is the largest webhook body the receiver reads; a larger
// one is refused with 413.
const MaxWebhookBody = extract.MaxWebhookBody

// validID is what a process or partner bank id may look like: Fimento's are
// 24-hex ObjectIds; anything id-like up to 64 characters is taken.
var validID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// WebhookPayload is what the receiver reads of a process-updated webhook:
// the process's id and partner bank. Fimento documents no payload
// (doc.go 17); the sandbox sends the updated process, whose personal
// fields the receiver never decodes, stores or logs.
type WebhookPayload struct {
	ID          string `json:"_id"`
	ProcessID   string `json:"processId"`
	PartnerBank string `json:"partnerBank"`
}

// WebhookHandler receives Fimento's process-updated webhooks. h.Subject is
// called with the process as a subject (Provider "fimento", Kind "process",
// Tenant its partner bank) before the handler answers 2xx; the daemon
// passes schedules.RecordSubject. Only partner banks in banks are taken,
// and, when known is set (API.Known), only processes Fimento knows:
// Fimento signs nothing, so a forged id costs one GET that answers 404, is
// answered 204 like any other and records nothing.
//
// The process id is _id, or processId; the partner bank is partnerBank, or
// the partner-bank-id header. Answers: 204 once h.Subject returned nil; 503
// when it failed (recording is idempotent, a retry does no harm); and,
// recording nothing, 405 for a method other than POST, 413 for a body over
// the limit, 400 for malformed JSON or a missing or odd id, 403 for a
// partner bank not configured. The body is never logged: it holds the
// customer's social security number and name.
func WebhookHandler(banks []string, h extract.Hooks, known func(ctx context.Context, bank, id string) (bool, error), log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	banks = slices.Clone(banks)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l := log.With("remote", r.RemoteAddr)
		refuse := func(status int, reason string) {
			l.Warn("fimento webhook refused", "status", status, "reason", reason)
			http.Error(w, reason, status)
		}
		body, status, reason := extract.ReadWebhookBody(w, r, http.MethodPost)
		if status != 0 {
			refuse(status, reason)
			return
		}
		var p WebhookPayload
		if err := json.Unmarshal(body, &p); err != nil {
			refuse(http.StatusBadRequest, "malformed JSON") // the decoder's message may quote the body
			return
		}
		id := p.ID
		if id == "" {
			id = p.ProcessID
		}
		bank := p.PartnerBank
		if bank == "" {
			bank = r.Header.Get(headerPartnerBank)
		}
		switch {
		case !validID.MatchString(id):
			refuse(http.StatusBadRequest, "process id missing or malformed")
			return
		case !slices.Contains(banks, bank):
			refuse(http.StatusForbidden, "partner bank not configured")
			return
		}
		l = l.With("partner_bank", bank, "process_id", id)
		if known != nil {
			ok, err := known(r.Context(), bank, id)
			if err == nil && !ok {
				// 2xx: the sender learns nothing of which ids exist.
				l.Warn("fimento webhook ignored: Fimento does not know the process")
				w.WriteHeader(http.StatusNoContent)
				return
			}
			if err != nil {
				l.Warn("fimento webhook: the process could not be checked; recorded, its run checks it", "err", err)
			}
		}
		if err := h.Subject(r.Context(), extract.Subject{Provider: provider, Tenant: bank, Kind: SubjectKind, ID: id}); err != nil {
			l.Error("fimento webhook: recording the process failed", "err", err)
			http.Error(w, "recording failed, retry later", http.StatusServiceUnavailable)
			return
		}
		l.Info("fimento webhook recorded")
		w.WriteHeader(http.StatusNoContent)
	})
}
