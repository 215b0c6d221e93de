package finapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/shopspring/decimal"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/transform"
)

const provider = "finapi"

// MembersWriter turns result pages into segment_members rows: one row per
// qualifying account (a user without accounts gets one row with an empty
// account id). Segment results are small next to transactions (one row per
// account per job), so rows are appended one at a time.
type MembersWriter struct {
	rows *transform.RowWriter
	lin  transform.Lineage
}

// NewMembersWriter starts an empty record.
func NewMembersWriter(mem memory.Allocator, lin transform.Lineage) *MembersWriter {
	return &MembersWriter{rows: transform.NewRowWriter(mem, transform.SegmentMembers), lin: lin}
}

// AddPage adds the members of one result page of job jobID, created with
// params (the request without its callback URL). It returns the users
// that could not be transformed; the others are added.
func (w *MembersWriter) AddPage(seg Segment, jobID, params string, pg ResultPage) []extract.Reject {
	var rejects []extract.Reject
	reject := func(key, reason string, raw []byte) {
		rejects = append(rejects, extract.Reject{Table: transform.SegmentMembers.Name, Key: jobID + "/" + key, Reason: reason, Raw: raw})
	}
	created, err := time.Parse(time.DateOnly, pg.CreationDate)
	if err != nil {
		for _, raw := range pg.Users {
			reject("", fmt.Sprintf("the page's creationDate %q is not a date", pg.CreationDate), raw)
		}
		return rejects
	}
	var duration any
	if pg.DurationInMonth != nil {
		duration = int32(*pg.DurationInMonth)
	}
	for _, raw := range pg.Users {
		u, accounts, err := decodeUser(raw)
		if err != nil {
			reject(u.UserID, err.Error(), raw)
			continue
		}
		for _, a := range accounts {
			err := w.rows.Append(provider, w.lin.Tenant, seg.Type, jobID, u.UserID, a.id,
				created, created.Add(Lifetime), params, a.amount, duration, a.metrics, a.raw,
				jobID, w.lin.RunID, w.lin.ExtractedAt, w.lin.Version)
			if err != nil {
				reject(u.UserID, err.Error(), raw)
			}
		}
	}
	return rejects
}

// Len is the number of rows added since the last Record.
func (w *MembersWriter) Len() int { return w.rows.Len() }

// Record returns the rows so far (the caller releases it) and starts anew.
func (w *MembersWriter) Record() arrow.Record { return w.rows.Record() }

// Release frees the builder.
func (w *MembersWriter) Release() { w.rows.Release() }

type accountRow struct {
	id      string
	amount  any // decimal.Decimal or nil
	metrics string
	raw     string
}

// decodeUser checks a user element against the shared shape and splits
// each account into its amount, its type-specific metrics (every field but
// accountId and amount, as compact JSON with sorted keys) and its raw JSON:
// the user object with only that account (as received), so that fields
// finAPI adds to a user are kept without repeating its other accounts. A
// user without accounts gets one row with an empty account id.
func decodeUser(raw json.RawMessage) (User, []accountRow, error) {
	var u User
	if err := json.Unmarshal(raw, &u); err != nil {
		return u, nil, fmt.Errorf("user does not match the result shape: %v", err)
	}
	if u.UserID == "" {
		return u, nil, fmt.Errorf("user without userId")
	}
	var shell struct {
		Accounts []json.RawMessage `json:"accounts"`
	}
	if err := json.Unmarshal(raw, &shell); err != nil {
		return u, nil, err
	}
	var user map[string]json.RawMessage
	if err := json.Unmarshal(raw, &user); err != nil {
		return u, nil, err
	}
	if len(u.Accounts) == 0 {
		own, err := rawJSON(user)
		return u, []accountRow{{metrics: "{}", raw: own}}, err
	}
	for k := range user {
		if strings.EqualFold(k, "accounts") { // as decoding matches it
			delete(user, k)
		}
	}
	rows := make([]accountRow, len(u.Accounts))
	for i, a := range u.Accounts {
		if a.AccountID == "" {
			return u, nil, fmt.Errorf("account %d without accountId", i)
		}
		r := accountRow{id: a.AccountID}
		if a.Amount != nil {
			d, err := decimal.NewFromString(a.Amount.String())
			if err != nil || -d.Exponent() > transform.MoneyScale {
				return u, nil, fmt.Errorf("account %s: amount %s is not a decimal with at most %d places", a.AccountID, *a.Amount, transform.MoneyScale)
			}
			r.amount = d
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(shell.Accounts[i], &fields); err != nil {
			return u, nil, err
		}
		delete(fields, "accountId")
		delete(fields, "amount")
		metrics, err := json.Marshal(fields) // map keys sorted: stable text
		if err != nil {
			return u, nil, err
		}
		user["accounts"] = json.RawMessage("[" + string(shell.Accounts[i]) + "]")
		own, err := rawJSON(user)
		if err != nil {
			return u, nil, err
		}
		r.metrics, r.raw = string(metrics), own
		rows[i] = r
	}
	return u, rows, nil
}

// rawJSON is a user object as compact JSON, its keys sorted and its values
// as received (no HTML escaping added).
func rawJSON(user map[string]json.RawMessage) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	err := enc.Encode(user)
	return strings.TrimSuffix(b.String(), "\n"), err
}
