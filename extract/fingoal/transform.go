package fingoal

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
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

// Opaque is the identifier FinGoal gets for one of ours: a keyed hash
// (HMAC-SHA256, 128 bits in hex) of the kind and the parts, so FinGoal never
// sees an id of another provider and the same row always maps to the same id
// (assumption 3).
func Opaque(key []byte, kind string, parts ...string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(kind))
	for _, p := range parts {
		m.Write([]byte{0})
		m.Write([]byte(p))
	}
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// Writer builds records of one table a row at a time: FinGoal's answers are
// at most ~1,000 rows per call, so a RowWriter is fast enough.
type Writer struct {
	rows *transform.RowWriter
	lin  transform.Lineage
}

func newWriter(mem memory.Allocator, t transform.Table, lin transform.Lineage) *Writer {
	return &Writer{rows: transform.NewRowWriter(mem, t), lin: lin}
}

// Len is the number of rows since the last Record.
func (w *Writer) Len() int { return w.rows.Len() }

// Record returns the rows so far (the caller releases it) and starts anew.
func (w *Writer) Record() arrow.Record { return w.rows.Record() }

// Release frees the builder.
func (w *Writer) Release() { w.rows.Release() }

// Submission is one ledger row: a source transaction and what FinGoal got.
// Currency is the source transaction's (FinGoal gets none): its enriched
// copy takes it from here.
type Submission struct {
	SourceProvider, SourceTenant, UserID, TransactionID string
	Currency                                            string
	UID, EnrichTransactionID                            string
	SubmissionID, BatchRequestID, Endpoint              string
	Status, Reason                                      string
	SubmittedAt                                         time.Time
}

// Ledger statuses (enrichment_submissions.status).
const (
	StatusPending   = "pending"   // written before the POST; FinGoal's answer not known yet
	StatusSubmitted = "submitted" // FinGoal took it: batch_request_id is set
	StatusRefused   = "refused"   // FinGoal answered 400; reason says why
	StatusUnsent    = "unsent"    // the POST certainly did not reach FinGoal: eligible again
)

// NewSubmissionsWriter writes enrichment_submissions rows.
func NewSubmissionsWriter(mem memory.Allocator, lin transform.Lineage) *Writer {
	return newWriter(mem, transform.EnrichmentSubmissions, lin)
}

// AddSubmission appends one ledger row.
func (w *Writer) AddSubmission(s Submission) error {
	return w.rows.Append(provider, w.lin.Tenant, s.SourceProvider, s.SourceTenant, s.UserID, s.TransactionID, s.Currency,
		s.UID, s.EnrichTransactionID, s.SubmissionID, s.BatchRequestID, s.Endpoint, s.Status, s.Reason,
		s.SubmittedAt.UTC().Truncate(time.Second), s.BatchRequestID, w.lin.RunID, w.lin.ExtractedAt, w.lin.Version)
}

// NewEnrichedWriter writes enriched transactions into transactions.
func NewEnrichedWriter(mem memory.Allocator, lin transform.Lineage) *Writer {
	return newWriter(mem, transform.Transactions, lin)
}

// AddEnriched appends one enriched transaction of batch batchID (assumption
// 6 for the mapping); currency maps FinGoal's transactionid to the source
// transaction's currency (the ledger's). A transaction that does not fit is
// returned as a reject and adds nothing.
func (w *Writer) AddEnriched(batchID string, raw json.RawMessage, currency map[string]string) (extract.Reject, bool) {
	var e Enriched
	reject := func(key, format string, args ...any) (extract.Reject, bool) {
		return extract.Reject{Table: transform.Transactions.Name, Key: RejectKey(e.UID, batchID, rejectKey(key, raw)),
			Reason: fmt.Sprintf(format, args...), Raw: compact(raw)}, false
	}
	if err := json.Unmarshal(raw, &e); err != nil {
		e.UID = extract.RejectKey(raw, "uid")
		return reject(extract.RejectKey(raw, "transactionid"), "enriched transaction does not match the expected shape: %v", err)
	}
	if e.UID == "" || e.TransactionID == "" {
		return reject(e.TransactionID, "enriched transaction without uid or transactionid")
	}
	day, err := time.Parse(time.DateOnly, e.Date)
	if err != nil {
		return reject(e.TransactionID, "date %q is not YYYY-MM-DD", e.Date)
	}
	amount, err := decimal.NewFromString(e.AmountNum.String())
	if err != nil || amount.Sign() < 0 {
		return reject(e.TransactionID, "amountnum %q is not a positive number", e.AmountNum)
	}
	switch e.Settlement {
	case "debit":
		amount = amount.Neg()
	case "credit":
	default:
		return reject(e.TransactionID, "settlement %q is neither debit nor credit", e.Settlement)
	}
	tags := e.Tags
	if tags == nil {
		tags = []string{}
	}
	providerCategory := e.Category
	if e.Subcategory != "" {
		providerCategory += "/" + e.Subcategory
	}
	err = w.rows.Append(provider, w.lin.Tenant, e.UID, e.TransactionID, e.AccountID, day, nil, amount, currency[e.TransactionID],
		e.SimpleDescription, "", "", "", "", "", "", "", "", "",
		Category(e.Category), providerCategory, "", tags, e.MerchantName, string(compact(raw)),
		batchID, w.lin.RunID, w.lin.ExtractedAt, w.lin.Version)
	if err != nil {
		return reject(e.TransactionID, "%v", err)
	}
	return extract.Reject{}, true
}

// FailedReject turns a failedTransactions item into the reject that records
// it with its reason.
func FailedReject(batchID string, raw json.RawMessage) extract.Reject {
	var f Failed
	reason := "FinGoal could not enrich the transaction"
	if err := json.Unmarshal(raw, &f); err != nil {
		reason += " (the failedTransactions item is unreadable: " + err.Error() + ")"
	} else if f.Reason != "" {
		reason += ": " + f.Reason
	}
	return extract.Reject{Table: transform.Transactions.Name, Key: RejectKey(f.UID, batchID, rejectKey(f.TransactionID, raw)), Reason: reason, Raw: compact(raw)}
}

// RejectKey is the record_key of a rejected transaction of a batch:
// uid/batch_request_id/transactionid, led by the user like every
// per-subject reject, so that deleting the user's rows finds it; without a
// uid, batch_request_id/transactionid.
func RejectKey(uid, batchID, transactionID string) string {
	if uid == "" {
		return batchID + "/" + transactionID
	}
	return uid + "/" + batchID + "/" + transactionID
}

// rejectKey is the key of a rejected record of a batch: its transactionid,
// dug out of the raw record when it did not decode, or else a hash of the
// record, so that two rejects of one batch never share a key (etl_rejects
// keeps one row per stream, run and key).
func rejectKey(id string, raw json.RawMessage) string {
	if id == "" {
		id = extract.RejectKey(raw, "transactionid")
	}
	if id == "" {
		sum := sha256.Sum256(raw)
		id = "sha256:" + hex.EncodeToString(sum[:8])
	}
	return id
}

// categories maps FinGoal's top-level categories to the common taxonomy
// (transactions.category); FinGoal's own stays in provider_category.
var categories = map[string]string{
	"groceries": "groceries", "restaurants": "restaurants", "coffee shops": "restaurants",
	"shopping": "shopping", "general merchandise": "shopping", "gas": "car", "auto": "car",
	"travel": "transport", "transportation": "transport", "subscriptions": "subscriptions",
	"entertainment": "leisure", "health": "leisure", "insurance": "insurance", "rent": "rent",
	"mortgage": "rent", "utilities": "utilities", "paycheck": "salary", "income": "income",
	"transfer": "transfers", "atm": "cash", "cash": "cash", "fees": "fees", "taxes": "taxes",
	"savings": "savings_investments", "investments": "savings_investments",
}

// Category is the common category of a FinGoal category, "other" if unknown.
func Category(fingoal string) string {
	if c, ok := categories[strings.ToLower(strings.TrimSpace(fingoal))]; ok {
		return c
	}
	return "other"
}

// Tag states (user_tags.state).
const (
	TagCurrent = "current"
	TagCreated = "created"
	TagDeleted = "deleted"
)

// NewTagsWriter writes user_tags rows.
func NewTagsWriter(mem memory.Allocator, lin transform.Lineage) *Writer {
	return newWriter(mem, transform.UserTags, lin)
}

// AddTag appends one tag of a user in a state, seen at observed; guid is the
// tag update it came from ("" for a read of the user).
func (w *Writer) AddTag(uid, tag, state, guid string, observed time.Time) error {
	return w.rows.Append(provider, w.lin.Tenant, uid, tag, state, guid, observed.UTC().Truncate(time.Second),
		guid, w.lin.RunID, w.lin.ExtractedAt, w.lin.Version)
}

// AddTagUpdate appends a tag update's created and deleted tags.
func (w *Writer) AddTagUpdate(u TagUpdate, guid string, observed time.Time) error {
	for _, tag := range u.Created {
		if err := w.AddTag(u.UID, tag, TagCreated, guid, observed); err != nil {
			return err
		}
	}
	for _, tag := range u.Deleted {
		if err := w.AddTag(u.UID, tag, TagDeleted, guid, observed); err != nil {
			return err
		}
	}
	return nil
}

// ModuleFinsight is insights.module of savings recommendations.
const ModuleFinsight = "finsight"

// NewFinsightsWriter writes insights rows.
func NewFinsightsWriter(mem memory.Allocator, lin transform.Lineage) *Writer {
	return newWriter(mem, transform.Insights, lin)
}

// AddFinsight appends one recommendation as insights rows (module finsight,
// insight_id the finsight_id or else uniqueId): metric amount_found (value
// amountFound, value_text the recommendation's title), and the texts
// recommendation, insight_text, category, cta_url and image_url where given;
// observed_from/to are finsightDate; raw is the whole object on every row.
func (w *Writer) AddFinsight(raw json.RawMessage) (extract.Reject, bool) {
	reject := func(key, format string, args ...any) (extract.Reject, bool) {
		return extract.Reject{Table: transform.Insights.Name, Key: key, Reason: fmt.Sprintf(format, args...), Raw: compact(raw)}, false
	}
	var f Finsight
	if err := json.Unmarshal(raw, &f); err != nil {
		return reject("", "finsight does not match the documented fields: %v", err)
	}
	id := f.FinsightID
	if id == "" {
		id = f.UniqueID
	}
	if id == "" || f.UserID == "" {
		return reject(id, "finsight without finsight_id/uniqueId or user_id")
	}
	key := f.UserID + "/" + id // led by the user, like every per-subject reject
	var value any
	if f.AmountFound.Value != "" {
		d, err := decimal.NewFromString(f.AmountFound.Value)
		if err != nil {
			return reject(key, "amountFound %q is not a decimal", f.AmountFound.Value)
		}
		value = d
	}
	var day any
	if f.FinsightDate != "" {
		d, err := time.Parse(time.DateOnly, f.FinsightDate[:min(len(f.FinsightDate), 10)])
		if err != nil {
			return reject(key, "finsightDate %q is not a date", f.FinsightDate)
		}
		day = d
	}
	var txs []string
	if f.TransactionID != "" {
		txs = []string{f.TransactionID}
	} else {
		txs = []string{}
	}
	body := string(compact(raw))
	rows := [][2]any{{"amount_found", f.Recommendation}}
	for _, m := range [][2]string{{"recommendation", f.Recommendation}, {"insight_text", f.InsightText},
		{"category", f.Category}, {"cta_url", f.InsightCTAURL}, {"image_url", f.FinsightImage}} {
		if m[1] != "" {
			rows = append(rows, [2]any{m[0], m[1]})
		}
	}
	for i, r := range rows {
		v := value
		if i > 0 {
			v = nil
		}
		// Only the first row can be refused (its value); then none was added.
		if err := w.rows.Append(provider, w.lin.Tenant, f.UserID, ModuleFinsight, id, r[0], "", v, r[1],
			day, day, txs, body, id, w.lin.RunID, w.lin.ExtractedAt, w.lin.Version); err != nil {
			return reject(key, "%v", err)
		}
	}
	return extract.Reject{}, true
}

// compact returns raw without insignificant whitespace, or raw itself when
// it is not JSON.
func compact(raw []byte) []byte {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return raw
	}
	return b.Bytes()
}
