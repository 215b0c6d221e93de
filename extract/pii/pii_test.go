package pii

import (
	"strings"
	"testing"
)

func TestFold(t *testing.T) {
	for _, c := range [][]string{
		{"Bergström", "BERGSTROEM", "BERGSTROM", "bergstrom"},
		{"Åkerlund", "AAKERLUND", "AKERLUND", "akerlund"},
		{"Märta", "Maerta", "MARTA", "marta"},
		{"Müller", "MUELLER", "Muller", "muller"},
		{"Straße", "STRASSE", "strasse"},
		{"Sæther", "SAETHER", "sather"},
		{"Kjærgaard", "KJAERGAARD", "KJARGARD", "kjargard"},
		{"Ørjan", "OERJAN", "orjan"},
		{"\u212Aasper", "kasper"},
	} {
		for _, s := range c[:len(c)-1] {
			if got := Fold(s); got != c[len(c)-1] {
				t.Errorf("Fold(%q) = %q, want %q", s, got, c[len(c)-1])
			}
		}
	}
}

func TestSameName(t *testing.T) {
	for _, c := range []struct {
		cp, holder string
		want       bool
	}{
		{"MUELLER ANNA", "Anna Müller", true},
		{"Mueller, Anna", "Anna Müller", true},
		{"A. MUELLER", "Anna Müller", true},
		{"Anna Müller", "Anna und Ben Müller", true},
		{"ANNA MULLER TAGESGELD", "Anna Müller", true},
		{"Hr. Jürgen Müller", "Juergen Mueller", true},
		{"Müller", "Anna Müller", false},
		{"Baeckerei Mueller", "Anna Müller", false},
		{"Ben Müller", "Anna Müller", false},
		{"A. B.", "Anna Becker", false},
		{"REWE Markt GmbH", "Anna Müller", false},
	} {
		if got := SameName(c.cp, c.holder); got != c.want {
			t.Errorf("SameName(%q, %q) = %v", c.cp, c.holder, got)
		}
	}
}

func TestScrubBody(t *testing.T) {
	for _, c := range []struct {
		body       string
		gone, kept []string
	}{
		{`{"error":"invalid_request","message":"customer 19950309-6316 not found","request":{"headers":{"Authorization":"Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"}}}`,
			[]string{"19950309-6316", "eyJhbGci", "c2ln"}, []string{"invalid_request", "customer", "not found", `"Authorization":"[redacted]"`}},
		{"400 Bad Request\nAuthorization: Bearer abc.def-123\nX-Request-Id: 42\n\nmissing field iban",
			[]string{"abc.def-123"}, []string{"X-Request-Id: 42", "missing field iban"}},
		{`{"client_secret":"s3cr3t","password": "hunter2", "access_token":12345, "detail":"bad credentials"}`,
			[]string{"s3cr3t", "hunter2", "12345"}, []string{"bad credentials"}},
		{"grant_type=client_credentials&client_secret=s3cr3t&scope=x",
			[]string{"s3cr3t"}, []string{"grant_type=client_credentials", "scope=x"}},
		{`{"ssn":"199503096316","firstName":"Märta","lastName":"Åkerlund","code":"E42"}`,
			[]string{"199503096316", "Märta", "Åkerlund"}, []string{`"code":"E42"`}},
		{"upstream: org 556 123 4567 rejected, amount 1 234,50, ref 4711081517",
			[]string{"556 123 4567"}, []string{"upstream: org", "rejected, amount 1 234,50, ref 4711081517"}},
		{"Basic authentication required", nil, []string{"Basic authentication required"}},
	} {
		got := string(ScrubBody([]byte(c.body)))
		for _, g := range c.gone {
			if strings.Contains(got, g) {
				t.Errorf("%.40q: %q kept: %s", c.body, g, got)
			}
		}
		for _, k := range c.kept {
			if !strings.Contains(got, k) {
				t.Errorf("%.40q: %q lost: %s", c.body, k, got)
			}
		}
	}
}
