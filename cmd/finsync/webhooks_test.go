package main

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/extract/hostile"
	"github.com/finsync/finsync/transform"
)

// Every webhook receiver the daemon mounts answers the hostile corpus
// (and a body over the size cap) with a 4xx, records nothing, and does not
// panic.
func TestWebhooksRefuseHostilePayloads(t *testing.T) {
	c, err := LoadConfig(context.Background(), lookupFrom(map[string]string{
		"FINSYNC_FINO_BASE_URL": "http://127.0.0.1:1", "FINSYNC_FINO_CLIENT_ID": "c", "FINSYNC_FINO_CLIENT_SECRET": "s", "FINSYNC_FINO_WEBHOOK_SECRET": "whsec",
		"FINSYNC_FINAPI_BASE_URL": "http://127.0.0.1:1", "FINSYNC_FINAPI_MANDATORS": "m:id:secret",
		"FINSYNC_FIMENTO_BASE_URL": "http://127.0.0.1:1", "FINSYNC_FIMENTO_NAME": "n", "FINSYNC_FIMENTO_PASSWORD": "p",
		"FINSYNC_FIMENTO_HASH_KEY": "0123456789abcdef", "FINSYNC_FIMENTO_PARTNER_BANKS": "bank",
		"FINSYNC_FINGOAL_BASE_URL": "http://127.0.0.1:1/v3", "FINSYNC_FINGOAL_CLIENT_ID": "c", "FINSYNC_FINGOAL_CLIENT_SECRET": "s",
	}))
	if err != nil {
		t.Fatal(err)
	}
	recorded := 0
	hooks := webhookHooks{
		record:  func(context.Context, extract.Subject) error { recorded++; return nil },
		trigger: func(context.Context, string, string) { recorded++ },
		job:     func(context.Context, string, string, extract.Job) error { recorded++; return nil },
		records: func(context.Context, transform.Table, arrow.Record) error { recorded++; return nil },
		version: func() uint64 { return 1 },
	}
	payloads := append(hostile.Payloads(), bytes.Repeat([]byte("x"), 2<<20))
	mounted := 0
	for _, p := range providers(c, slog.New(slog.DiscardHandler), nil) {
		if p.webhook == nil {
			continue
		}
		mounted++
		h := p.webhook(hooks)
		for i, body := range payloads {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodPost, "/webhooks/"+p.name+"?tenant=m&segmentType=highBalance", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			h.ServeHTTP(rec, req)
			if rec.Code < 400 || rec.Code >= 500 {
				t.Errorf("%s webhook, payload %d (%.40q): answered %d", p.name, i, body, rec.Code)
			}
		}
	}
	if mounted != 4 || recorded != 0 {
		t.Errorf("%d receivers tried; %d payloads recorded (want 4 and 0)", mounted, recorded)
	}
}
