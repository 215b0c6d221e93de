package extract

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A provider that echoes the request's Authorization header and names the
// customer in its error body: neither the error, its Body nor the log may
// carry the token or the personal number, the provider's message stays.
func TestHTTPErrorBodyScrubbed(t *testing.T) {
	const token, ssn = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjbGllbnQifQ.c2lnbmF0dXJl", "19950309-6316"
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"account locked for customer Märta Åkerlund `+strings.ReplaceAll(ssn, "-", " ")+
			`","echo":{"Authorization":"`+r.Header.Get("Authorization")+`"}}`+"\nAuthorization: "+r.Header.Get("Authorization"))
	}))
	defer ts.Close()
	var logs bytes.Buffer
	tokens := NewTokenCache(func(context.Context) (Token, error) {
		return Token{Value: token, Expiry: time.Now().Add(time.Hour)}, nil
	}, nil)
	c := NewClient(ClientOptions{BaseURL: ts.URL, Auth: tokens, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	_, err := c.Do(t.Context(), http.MethodGet, "/users", nil, nil, nil)
	var he *HTTPError
	if !errors.As(err, &he) {
		t.Fatalf("want an HTTPError, got %v", err)
	}
	direct := &HTTPError{Status: 401, Method: "GET", URL: "/x",
		Body: []byte("Authorization: Bearer " + token + "\npersonnummer 199503096316 unknown")}
	for what, text := range map[string]string{"Error()": err.Error(), "Body": string(he.Body), "log": logs.String(), "built Error()": direct.Error()} {
		for _, secret := range []string{"c2lnbmF0dXJl", "eyJzdWIi", "19950309 6316", "199503096316"} {
			if strings.Contains(text, secret) {
				t.Errorf("%s carries %q: %s", what, secret, text)
			}
		}
	}
	if !strings.Contains(err.Error(), "account locked for customer") || !strings.Contains(direct.Error(), "unknown") {
		t.Errorf("the provider's message is lost: %s / %s", err, direct)
	}
}
