package fimento

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	fimentosb "github.com/finsync/finsync/extract/fimento/sandbox"

	"github.com/finsync/finsync/extract"
)

func TestWebhookHandler(t *testing.T) {
	var got []extract.Subject
	var fail bool
	record := func(_ context.Context, s extract.Subject) error {
		if fail {
			return errors.New("down")
		}
		got = append(got, s)
		return nil
	}
	h := WebhookHandler([]string{"bank-1"}, extract.Hooks{Subject: record}, nil, nil)
	tests := []struct {
		name, method, body string
		header             string
		fail               bool
		status             int
	}{
		{"process body", "POST", `{"_id":"605c6c479691950d359bb0e9","partnerBank":"bank-1","socialSecurityNumber":"199503096316"}`, "", false, 204},
		{"processId and header", "POST", `{"processId":"p-2"}`, "bank-1", false, 204},
		{"other bank", "POST", `{"_id":"p-3","partnerBank":"bank-2"}`, "", false, 403},
		{"no id", "POST", `{"partnerBank":"bank-1"}`, "", false, 400},
		{"odd id", "POST", `{"_id":"../x","partnerBank":"bank-1"}`, "", false, 400},
		{"not JSON", "POST", `{"_id":`, "", false, 400},
		{"GET", "GET", ``, "", false, 405},
		{"too large", "POST", `{"_id":"p","x":"` + strings.Repeat("a", MaxWebhookBody) + `"}`, "", false, 413},
		{"registry down", "POST", `{"_id":"p-4","partnerBank":"bank-1"}`, "", true, 503},
	}
	for _, tc := range tests {
		fail = tc.fail
		req := httptest.NewRequest(tc.method, "/", strings.NewReader(tc.body))
		if tc.header != "" {
			req.Header.Set(headerPartnerBank, tc.header)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != tc.status {
			t.Errorf("%s: %d, want %d", tc.name, w.Code, tc.status)
		}
	}
	if len(got) != 2 || got[0] != (extract.Subject{Provider: "fimento", Tenant: "bank-1", Kind: "process", ID: "605c6c479691950d359bb0e9"}) || got[1].ID != "p-2" {
		t.Fatalf("recorded %+v", got)
	}
}

// The sandbox sends a webhook when a process changes; AddWebhook registers
// the receiver through the documented endpoint.
func TestWebhookFromSandbox(t *testing.T) {
	recorded := make(chan extract.Subject, 10)
	receiver := httptest.NewServer(WebhookHandler([]string{"605c6c479691950d359bb0e9"}, extract.Hooks{Subject: func(_ context.Context, s extract.Subject) error {
		recorded <- s
		return nil
	}}, nil, nil))
	defer receiver.Close()
	c := &clock{t: testLineage().ExtractedAt}
	sb, api := startSandbox(t, fimentosb.Options{Now: c.Now, WebhookPoll: 1 << 62})
	if err := api.AddWebhook(context.Background(), receiver.URL); err != nil {
		t.Fatal(err)
	}
	if err := api.AddWebhook(context.Background(), receiver.URL); err != nil { // twice is harmless
		t.Fatal(err)
	}
	bank := sb.PartnerBanks()[0]
	sb.Tick()
	if len(recorded) != 0 {
		t.Fatal("a webhook without a change")
	}
	sb.Revoke(bank, sb.Processes(bank)[0])
	sb.Tick()
	if len(recorded) != 1 || sb.WebhooksSent() != 1 {
		t.Fatalf("%d recorded, %d sent", len(recorded), sb.WebhooksSent())
	}
	if s := <-recorded; s.ID != sb.Processes(bank)[0] || s.Tenant != bank {
		t.Fatalf("recorded %+v", s)
	}
	var herr *extract.HTTPError
	if err := api.AddWebhook(context.Background(), "ftp://x"); !errors.As(err, &herr) || herr.Status != http.StatusBadRequest {
		t.Errorf("bad URL: %v", err)
	}
}
