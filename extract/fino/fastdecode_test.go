package fino

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	finosb "github.com/finsync/finsync/extract/fino/sandbox"

	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/finsync/finsync/extract/hostile"
	"github.com/finsync/finsync/transform"
)

// FuzzDecodeCategorization: wherever the fast decoder takes a record, it
// decodes it exactly as json.Unmarshal does; where it declines, the
// caller's json.Unmarshal decides.
func FuzzDecodeCategorization(f *testing.F) {
	for _, seed := range []string{
		docCategorization,
		docCategorization[:len(docCategorization)-1] + `, "transaction": ` + docTransaction + `}`,
		`{"transactionId":"t","accountId":"a","transaction":{"transactionId":"t","amount":1e400,"bookingDate":1}}`,
		`{"transactionId":"t","tags":[],"transaction":null,"creationDate":null}`,
		`{"transactionId":"t","transactionId":"u"}`,
		`{"TransactionId":"t"}`,
		`{"transactionId":"M\u00fcller"}`,
		`{"transactionId":"Müller","tags":["a","b"]}`,
		`{"transaction":{"amount":"12.5","bookingDate":1.5}}`,
		`{"transaction":{"paymentPartner":{"name":"x","iban":null},"transactionCode":9223372036854775808}}`,
		`{"creationDate":"2026-01-22T14:08:47+01:00"}`, `{"creationDate":"2026-01-22 14:08:47"}`,
		`{"transaction":{"bookingDate":"2026-11-03T00:00:00+01:00","valueDate":"2026-11-03"}}`,
		`{"transaction":{"bookingDate":"2026-11-03T00:00:00\u002b01:00","valueDate":null}}`,
		`{"transaction":{"bookingDate":true}}`, `{"transaction":{"bookingDate":""}}`,
		`null`, `[]`, `"x"`, `{}`, ` { } `, `{}x`,
	} {
		f.Add([]byte(seed))
	}
	for _, h := range hostile.Payloads() {
		f.Add(h)
	}
	rules := NewTransactionsBuilder(memory.DefaultAllocator, transform.Lineage{}).scrub
	f.Fuzz(func(t *testing.T, raw []byte) {
		var fast Categorization
		scrubbed, ok := decodeCategorization(raw, &fast, nil)
		if !ok {
			return
		}
		var slow Categorization
		if err := json.Unmarshal(raw, &slow); err != nil {
			t.Fatalf("fast decoder took %q, json.Unmarshal refuses it: %v", raw, err)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("%q:\n fast %+v\n slow %+v", raw, fast, slow)
		}
		want, err := scrubJSON(nil, raw, rules)
		if err != nil || string(scrubbed) != string(want) {
			t.Fatalf("%q scrubbed:\n fast %s\n scrubJSON %s (%v)", raw, scrubbed, want, err)
		}
	})
}

// The fast decoder takes every categorization the sandbox serves, with
// Unix seconds or local timestamps (the sandbox package's
// TestCategorizationsEncodeAsJSONMarshal holds its encoding to
// json.Marshal's).
func TestSandboxCategorizationsDecodeFast(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, zone := range []*time.Location{nil, berlin} {
		s := finosb.New(finosb.Options{UsersPerTenant: 3, CompaniesPerTenant: 2, Months: 4, LifeEvents: true, LocalTimestamps: zone})
		n += decodeFast(t, s)
	}
	if n < 1000 {
		t.Fatalf("only %d categorizations decoded", n)
	}
}

func decodeFast(t *testing.T, s *finosb.Server) int {
	n := 0
	for _, u := range s.Users("sandbox-client") {
		for _, withTx := range []bool{true, false} {
			for _, locale := range []string{"", "de", "en"} {
				r, err := s.Records("sandbox-client", u, withTx, locale)
				if err != nil {
					t.Fatal(err)
				}
				for _, raw := range r.Categorizations {
					var back Categorization
					if _, ok := decodeCategorization(raw, &back, nil); !ok {
						t.Fatalf("slow path for %s", raw)
					}
					n++
				}
			}
		}
	}
	return n
}
