package fino

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// The docs' examples, with their // comments and "..." removed and the
// placeholder objects ("transaction": { // optionally ... }) left out or empty.
const (
	docCategorization = `{
  "accountId": "account-1",
  "transactionId": "transaction-1",
  "creationDate": "2026-01-22T14:08:47+01:00",
  "descriptiveTag": "insurance_legal",
  "localizedTag": "Rechtsschutzversicherung",
  "tags": ["insurance_legal", "insurance", "spending"]
}`
	// docTransaction follows the upload model's field list (no example there).
	docTransaction = `{
  "transactionId": "transaction-1", "amount": -19.9, "currency": "EUR",
  "bookingDate": 1769036400, "valueDate": 1769036400, "bookingText": "FOLGELASTSCHRIFT",
  "purpose": "Beitrag Rechtsschutz", "paymentPartner": {"bic": "BYLADEM1001", "creditorId": "DE98ZZZ09999999999", "iban": "DE02120300000000202051", "name": "Rechtsschutz AG"},
  "eref": "E2E1", "mref": "M1", "merchantCategoryCode": "6300", "sepaPurposeCode": "INSU", "transactionCode": 105
}`
	docContract = `{
  "contractId": "347e903e-128b-465a-adf5-1abf13d2fe1c",
  "amount": -55.08,
  "amountConsistency": "FIX",
  "category": "GEZ",
  "contractPartner": {},
  "duration": 90,
  "interval": "QUARTERLY",
  "isActive": true,
  "mref": "6666666066666",
  "nextBookingDate": "2026-05-16",
  "nextBookingRange": ["2026-05-08", "2026-05-24"],
  "transactions": [
    {"transactionId": "T3de380d6-7452-4e30-b3a3-b5f2807a87b3"},
    {"transactionId": "Tef59d8f9-f48f-476c-b885-5f11fa727595"}
  ],
  "additionalInfo": {}
}`
	docHistory = `{
  "histories": [
    {
      "account": {"accountId": "account-1"},
      "dailyBalances": [
        {"date": "2026-02-23", "balance": 7481.06},
        {"date": "2026-02-22", "balance": 7481.06},
        {"date": "2026-02-21", "balance": 7481.06}
      ]
    }
  ]
}`
	docAccountDetection = `{
  "accountsOverview": {
    "accountsView": [
      {
        "accountId": "account-1",
        "type": "GIRO",
        "additionalAnalysesInfo": {
          "isUserAdded": true,
          "analysisPeriod": {"since": "2024-01-02T01:01:01Z", "until": "2026-02-20T01:01:01Z"},
          "analysis": {"median": 150},
          "creditorId": ""
        }
      }
    ],
    "creditsView": [
      {
        "accountId": "",
        "type": "KREDIT_KARTE",
        "additionalAnalysesInfo": {
          "isUserAdded": false,
          "analysisPeriod": {"since": "2024-01-24T01:01:01Z", "until": "2026-01-24T01:01:01Z"},
          "analysis": {
            "median": -180.15, "average": -180.15, "medianEarning": 0, "medianSpending": -180.15,
            "averageEarning": 0, "averageSpending": -180.15,
            "spending": {"median": -180.15, "average": -180.15, "transactionIDs": ["T082a6370-dc82-42b9-87d0-753dbb9c79e8"]}
          }
        },
        "creditorId": "DE3810400000020144"
      }
    ]
  }
}`
	docToken = `{"access_token": "eyJhbGciOi...", "expires_in": 300, "token_type": "Bearer", "scope": "banking categorization ...", "session_state": "1e2212ad-..."}`
	docError = `{"type": "forbidden", "message": "forbidden. No access to this resource"}`
)

func TestDecodeDocExamples(t *testing.T) {
	t.Run("categorization", func(t *testing.T) {
		for _, data := range []string{
			`{"categorizations":[` + docCategorization + `],"page":1,"size":100,"totalPages":1,"totalElements":1}`,
			`[` + docCategorization + `]`,
		} {
			page, rejects, err := DecodeCategorizationPage([]byte(data))
			if err != nil || len(rejects) != 0 || len(page.Categorizations) != 1 || page.TotalPages != 1 {
				t.Fatalf("%+v %v %v", page, rejects, err)
			}
			c := page.Categorizations[0]
			want := time.Date(2026, 1, 22, 13, 8, 47, 0, time.UTC)
			if c.AccountID != "account-1" || c.TransactionID != "transaction-1" || !c.CreationDate.Equal(want) ||
				c.DescriptiveTag != "insurance_legal" || c.LocalizedTag != "Rechtsschutzversicherung" ||
				!reflect.DeepEqual(c.Tags, []string{"insurance_legal", "insurance", "spending"}) || c.Transaction != nil {
				t.Fatalf("%+v", c)
			}
		}
	})
	t.Run("raw transaction", func(t *testing.T) {
		data := docCategorization[:len(docCategorization)-1] + `, "transaction": ` + docTransaction + `}`
		page, rejects, err := DecodeCategorizationPage([]byte(`[` + data + `]`))
		if err != nil || len(rejects) != 0 {
			t.Fatal(rejects, err)
		}
		tx := page.Categorizations[0].Transaction
		if tx.Amount != "-19.9" || tx.BookingDate != (Timestamp{Unix: 1769036400}) || tx.PaymentPartner.CreditorID != "DE98ZZZ09999999999" ||
			tx.MandateReference != "M1" || tx.EndToEndReference != "E2E1" || tx.MerchantCategoryCode != "6300" || tx.TransactionCode != 105 {
			t.Fatalf("%+v", tx)
		}
	})
	t.Run("contract", func(t *testing.T) {
		contracts, rejects, err := DecodeContracts([]byte(`{"contracts":[` + docContract + `]}`))
		if err != nil || len(rejects) != 0 || len(contracts) != 1 {
			t.Fatal(contracts, rejects, err)
		}
		c := contracts[0]
		if c.ContractID != "347e903e-128b-465a-adf5-1abf13d2fe1c" || c.Amount != "-55.08" || c.AmountConsistency != "FIX" ||
			c.Category != "GEZ" || c.Duration != 90 || c.Interval != "QUARTERLY" || !c.IsActive || c.MandateReference != "6666666066666" ||
			c.NextBookingDate != "2026-05-16" || !reflect.DeepEqual(c.NextBookingRange, []string{"2026-05-08", "2026-05-24"}) ||
			len(c.Transactions) != 2 || c.Transactions[1].TransactionID != "Tef59d8f9-f48f-476c-b885-5f11fa727595" {
			t.Fatalf("%+v", c)
		}
	})
	t.Run("account history", func(t *testing.T) {
		h, rejects, err := DecodeAccountHistory([]byte(docHistory))
		if err != nil || len(rejects) != 0 || len(h.Histories) != 1 {
			t.Fatal(h, rejects, err)
		}
		want := []DailyBalance{{"2026-02-23", "7481.06"}, {"2026-02-22", "7481.06"}, {"2026-02-21", "7481.06"}}
		if h.Histories[0].Account.AccountID != "account-1" || !reflect.DeepEqual(h.Histories[0].DailyBalances, want) {
			t.Fatalf("%+v", h)
		}
	})
	t.Run("account detection", func(t *testing.T) {
		var d AccountDetection
		if err := json.Unmarshal([]byte(docAccountDetection), &d); err != nil {
			t.Fatal(err)
		}
		giro, card := d.AccountsOverview.AccountsView[0], d.AccountsOverview.CreditsView[0]
		if giro.Type != AccountGiro || !giro.AdditionalAnalysesInfo.IsUserAdded || giro.AdditionalAnalysesInfo.Analysis.Median != "150" ||
			giro.AdditionalAnalysesInfo.CreditorID == nil || *giro.AdditionalAnalysesInfo.CreditorID != "" {
			t.Fatalf("%+v", giro)
		}
		if card.Type != AccountKreditKarte || card.AdditionalAnalysesInfo.IsUserAdded || card.CreditorID != "DE3810400000020144" ||
			card.AdditionalAnalysesInfo.Analysis.Spending.TransactionIDs[0] != "T082a6370-dc82-42b9-87d0-753dbb9c79e8" ||
			!card.AdditionalAnalysesInfo.AnalysisPeriod.Until.Equal(time.Date(2026, 1, 24, 1, 1, 1, 0, time.UTC)) {
			t.Fatalf("%+v", card)
		}
	})
	t.Run("token and error", func(t *testing.T) {
		var tok Token
		var e APIError
		if err := json.Unmarshal([]byte(docToken), &tok); err != nil || tok.ExpiresIn != 300 || tok.TokenType != "Bearer" {
			t.Fatal(tok, err)
		}
		if err := json.Unmarshal([]byte(docError), &e); err != nil || e.Type != "forbidden" || e.Error() == "" {
			t.Fatal(e, err)
		}
	})
}

// elements counts the elements a decoder splits data into, reading the
// envelope as the decoder does (encoding/json matches names in any case).
func elements[E any](t *testing.T, data []byte, list func(*E) []json.RawMessage) int {
	if isArray(data) {
		var l []json.RawMessage
		if json.Unmarshal(data, &l) != nil {
			t.Fatal("decoder accepted an array json rejects")
		}
		return len(l)
	}
	var env E
	if json.Unmarshal(data, &env) != nil {
		t.Fatal("decoder accepted an object json rejects")
	}
	return len(list(&env))
}

type (
	rawCategorizations struct {
		List []json.RawMessage `json:"categorizations"`
	}
	rawContracts struct {
		List []json.RawMessage `json:"contracts"`
	}
)

// stable re-encodes v and checks that decoding that again gives the same bytes.
func stable[T any](t *testing.T, v T) {
	first, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("decoded value does not encode: %v", err)
	}
	var again T
	if err := json.Unmarshal(first, &again); err != nil {
		t.Fatalf("re-encoded value does not decode: %v\n%s", err, first)
	}
	if second, _ := json.Marshal(again); !bytes.Equal(first, second) {
		t.Fatalf("round trip changed the value:\n%s\n%s", first, second)
	}
}
