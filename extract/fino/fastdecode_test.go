package fino

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/finsync/finsync/extract/hostile"
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
		`null`, `[]`, `"x"`, `{}`, ` { } `, `{}x`,
	} {
		f.Add([]byte(seed))
	}
	for _, h := range hostile.Payloads() {
		f.Add(h)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var fast Categorization
		if !decodeCategorization(raw, &fast) {
			return
		}
		var slow Categorization
		if err := json.Unmarshal(raw, &slow); err != nil {
			t.Fatalf("fast decoder took %q, json.Unmarshal refuses it: %v", raw, err)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("%q:\n fast %+v\n slow %+v", raw, fast, slow)
		}
	})
}

// The sandbox's categorizations all take the fast path.
func TestSandboxCategorizationsDecodeFast(t *testing.T) {
	s := NewSandbox(SandboxOptions{UsersPerTenant: 2, Months: 3, LifeEvents: true})
	for _, u := range s.Users(s.opts.ClientID) {
		p := s.data.profile(s.opts.ClientID, User{UserID: u})
		txns, _ := s.data.txnRange(p, time.Time{}, time.Time{}, 0, 1<<30)
		for i := range txns {
			for _, locale := range []string{"", "de"} {
				raw := s.encodeCategorization(p, &txns[i], true, locale)
				var c Categorization
				if !decodeCategorization(raw, &c) {
					t.Fatalf("slow path for %s", raw)
				}
			}
		}
	}
}
