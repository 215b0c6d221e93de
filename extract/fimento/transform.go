package fimento

// Converters from Fimento objects to rows of the common schema (its
// conventions: package transform). A process holds one customer's few months of
// transactions, so rows go through transform.RowWriter: simple, checked,
// and far from the volumes where fino's typed builders pay off.
//
// Every row of a process has user_id = source_job_id = the processId
// (doc.go 19). Rejects are keyed "<processId>/<record>", so deleting a
// process's data also finds its rejects.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/shopspring/decimal"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/transform"
)

// provider is the provider column of every row and the registry's name.
const provider = "fimento"

// Module is the insights module of every Fimento insight row.
const Module = "fimento-insights"

// UserLevelAccount is the account_id of balances that describe all of a
// process's accounts together (the transaction graph, doc.go 13).
const UserLevelAccount = "*"

// Person is what the rows of one process share: its id and currency, and
// the redactor of its customer's identifiers.
type Person struct {
	ProcessID string
	Currency  string
	redact    *redactor
}

// NewPerson is the Person of process p (doc.go 12: the currency follows the
// market). The insights may name the customer too; their identifiers are
// redacted as well.
func NewPerson(p *Process, more ...*Insights) Person {
	ssn, company, first, last := p.SocialSecurityNumber, p.CompanyID, p.FirstName, p.LastName
	r := newRedactor(ssn, company, first, last)
	for _, in := range more {
		if in != nil && (in.SocialSecurityNumber != ssn || in.CompanyID != company || in.FirstName != first || in.LastName != last) {
			r = r.join(newRedactor(in.SocialSecurityNumber, in.CompanyID, in.FirstName, in.LastName))
		}
	}
	return Person{ProcessID: p.ID, Currency: currencyOf(p.Market), redact: r}
}

// currencyOf is the currency of a market: Fimento serves Sweden and Finland
// and names no currency anywhere (doc.go 12).
func currencyOf(market string) string {
	switch strings.ToUpper(market) {
	case "FI":
		return "EUR"
	default:
		return "SEK"
	}
}

// builder collects rows of one table and hands out records.
type builder struct {
	table transform.Table
	w     *transform.RowWriter
	n     int
	size  int // bytes of the text columns of the rows so far
	lin   transform.Lineage
}

func newBuilder(mem memory.Allocator, t transform.Table, lin transform.Lineage) builder {
	return builder{table: t, w: transform.NewRowWriter(mem, t), lin: lin}
}

// Len is the number of rows added since the last NewRecord.
func (b *builder) Len() int { return b.n }

// NewRecord returns the rows so far (the caller releases it).
func (b *builder) NewRecord() arrow.Record { b.n, b.size = 0, 0; return b.w.Record() }

// Release frees the builder.
func (b *builder) Release() { b.w.Release() }

// add appends one row: the table's columns after provider and tenant, up
// to the lineage, which it adds with jobID.
func (b *builder) add(jobID string, vals ...any) error {
	row := make([]any, 0, len(vals)+6)
	row = append(row, provider, b.lin.Tenant)
	row = append(row, vals...)
	row = append(row, jobID, b.lin.RunID, b.lin.ExtractedAt, b.lin.Version)
	if err := b.w.Append(row...); err != nil {
		return err
	}
	for _, v := range vals {
		if s, ok := v.(string); ok {
			b.size += len(s)
		}
	}
	b.n++
	return nil
}

// reject builds a reject of this table keyed processId/key, its raw
// scrubbed; raw that cannot be scrubbed is dropped.
func (b *builder) reject(p Person, key, reason string, raw []byte) extract.Reject {
	rej := extract.Reject{Table: b.table.Name, Key: p.ProcessID + "/" + key, Reason: p.redact.text(reason)}
	if len(raw) > 0 {
		if s, err := scrub(raw); err == nil {
			rej.Raw = p.redact.bytes(s)
		} else {
			rej.Reason += " (raw dropped: it cannot be scrubbed)"
		}
	}
	return rej
}

// TransactionsBuilder converts categorised transactions into rows of
// transform.Transactions.
type TransactionsBuilder struct{ builder }

// NewTransactionsBuilder starts an empty transactions record whose rows
// carry lin.
func NewTransactionsBuilder(mem memory.Allocator, lin transform.Lineage) *TransactionsBuilder {
	return &TransactionsBuilder{newBuilder(mem, transform.Transactions, lin)}
}

// AddJSON decodes one categorised transaction of p and adds it, or returns
// it as a reject (ok=false) with nothing appended. It is the one decoder of
// the record type (FuzzRecords).
//
// Mapping: booking_date is the calendar day of date as written (doc.go 12),
// value_date NULL; amount exact, signed as sent (doc.go 11); currency of
// the market; description redacted (doc.go 20); category the common one,
// provider_category Fimento's; raw the scrubbed, redacted item (it keeps
// cBankId, which has no column).
func (b *TransactionsBuilder) AddJSON(p Person, raw []byte) (extract.Reject, bool) {
	var t Transaction
	if err := json.Unmarshal(raw, &t); err != nil {
		return b.reject(p, extract.RejectKey(raw, "_id"), "not a transaction: "+err.Error(), raw), false
	}
	fail := func(reason string) (extract.Reject, bool) { return b.reject(p, t.ID, reason, raw), false }
	if t.ID == "" {
		return fail("_id missing")
	}
	amount, err := parseAmount(t.Amount, transform.MoneyScale, 14)
	if err != nil {
		return fail("amount " + err.Error())
	}
	day, err := transform.ParseDay(t.Date)
	if err != nil {
		return fail("date " + err.Error())
	}
	scrubbed, err := scrub(raw)
	if err != nil {
		return fail("raw: " + err.Error())
	}
	err = b.add(p.ProcessID, p.ProcessID, t.ID, t.AccountID, day, nil, amount, p.Currency,
		p.redact.text(t.Description), "", "", "", "", "", "", "", "", "",
		commonCategory(t.Category), t.Category, "", []string{}, "", string(p.redact.bytes(scrubbed)))
	if err != nil {
		return fail(err.Error())
	}
	return extract.Reject{}, true
}

// AccountsBuilder converts accountsInfo into rows of transform.Accounts.
type AccountsBuilder struct{ builder }

// NewAccountsBuilder starts an empty accounts record whose rows carry lin.
func NewAccountsBuilder(mem memory.Allocator, lin transform.Lineage) *AccountsBuilder {
	return &AccountsBuilder{newBuilder(mem, transform.Accounts, lin)}
}

// AccountID is the id finsync gives an account of accountsInfo, which has
// none (doc.go 15): the first 64 bits of SHA-256 over bank and account
// number, stable across runs and processes.
func AccountID(bank, accountNumber string) string {
	sum := sha256.Sum256([]byte(bank + "\x00" + accountNumber))
	return "acct-" + hex.EncodeToString(sum[:8])
}

// AddJSON decodes one accountsInfo item of p and adds it (ok=false: a
// reject, nothing appended). account_type is normalized from type (kept in
// provider_account_type), bank_name is bank, balance exact; the name is
// redacted, raw scrubbed and redacted.
func (b *AccountsBuilder) AddJSON(p Person, raw []byte) (extract.Reject, bool) {
	var a AccountInfo
	if err := json.Unmarshal(raw, &a); err != nil {
		return b.reject(p, "account", "not an account: "+err.Error(), raw), false
	}
	if a.AccountNumber == "" {
		return b.reject(p, "account", "accountNumber missing: the account cannot be identified", raw), false
	}
	id := AccountID(a.Bank, a.AccountNumber)
	fail := func(reason string) (extract.Reject, bool) { return b.reject(p, id, reason, raw), false }
	var balance any
	if a.Balance != "" {
		d, err := parseAmount(a.Balance, transform.MoneyScale, 14)
		if err != nil {
			return fail("balance " + err.Error())
		}
		balance = d
	}
	scrubbed, err := scrub(raw)
	if err != nil {
		return fail("raw: " + err.Error())
	}
	err = b.add(p.ProcessID, p.ProcessID, id, accountType(a.Type), a.Type, p.redact.text(a.Name), "", a.AccountNumber,
		"", a.Bank, "", p.Currency, balance, nil, nil, "", string(p.redact.bytes(scrubbed)))
	if err != nil {
		return fail(err.Error())
	}
	return extract.Reject{}, true
}

// accountType normalizes Fimento's free-text account type (doc.go 15).
func accountType(t string) string {
	l := strings.ToLower(t)
	has := func(words ...string) bool {
		for _, w := range words {
			if strings.Contains(l, w) {
				return true
			}
		}
		return false
	}
	switch {
	case has("credit", "card", "kort", "kredit"):
		return "credit_card"
	case has("loan", "lån", "laina", "mortgage"):
		return "loan"
	case has("invest", "isk", "depot", "depå", "fond", "pension"):
		return "depot"
	case has("saving", "spar", "sääst"):
		return "savings"
	case has("check", "current", "transaction", "löne", "lön", "privat", "käyttö", "personal"):
		return "checking"
	}
	return "other"
}

// BalancesBuilder converts the transaction graph's balances into rows of
// transform.AccountBalances: account "*", granularity "day" (doc.go 13).
type BalancesBuilder struct{ builder }

// NewBalancesBuilder starts an empty account_balances record whose rows
// carry lin.
func NewBalancesBuilder(mem memory.Allocator, lin transform.Lineage) *BalancesBuilder {
	return &BalancesBuilder{newBuilder(mem, transform.AccountBalances, lin)}
}

// Add appends the end-of-day balance of one graph day (ok=false: a reject).
func (b *BalancesBuilder) Add(p Person, d GraphDay) (extract.Reject, bool) {
	fail := func(reason string) (extract.Reject, bool) {
		raw, _ := json.Marshal(map[string]any{"date": d.Date, "balance": string(d.Info.Balance)})
		return b.reject(p, "balance/"+d.Date, reason, raw), false
	}
	day, err := transform.ParseDay(d.Date)
	if err != nil {
		return fail("date " + err.Error())
	}
	bal, err := parseAmount(d.Info.Balance, transform.MoneyScale, 14)
	if err != nil {
		return fail("balance " + err.Error())
	}
	if err := b.add(p.ProcessID, p.ProcessID, UserLevelAccount, "day", day, bal, p.Currency); err != nil {
		return fail(err.Error())
	}
	return extract.Reject{}, true
}

// InsightsBuilder converts the process and its insights into rows of
// transform.Insights, module fimento-insights, insight_id the processId.
type InsightsBuilder struct{ builder }

// NewInsightsBuilder starts an empty insights record whose rows carry lin.
func NewInsightsBuilder(mem memory.Allocator, lin transform.Lineage) *InsightsBuilder {
	return &InsightsBuilder{newBuilder(mem, transform.Insights, lin)}
}

// maxLeaves bounds the rows one undocumented object may become.
const maxLeaves = 1000

// insight is one row's varying part.
type insight struct {
	metric, period string
	value          *decimal.Decimal
	text, raw      string
}

// Add appends the insights of process proc (doc.go 16):
//   - process facts: status, consent, market, psu_type, data_collection_type;
//   - person_ref / company_ref: the keyed hashes of the customer's
//     identifiers (PersonRef), the only join key to a person;
//   - per graph day (period YYYY-MM-DD): negative_sum, positive_sum;
//   - totalBalance, categorisation and computationAutomation, whose shapes
//     are undocumented: one row per object with the scrubbed object as raw
//     (metric = its name), and one row per scalar inside it (metric = its
//     dotted path; numbers in value, other scalars in value_text);
//   - the members of the insights document and of the process that no
//     field names (doc.go 22), the same way, metric "insights.<name>" and
//     "process.<name>"; a scalar is one row with its value and raw;
//   - account_count, graph_days.
//
// fetchedAtInterval is observed_from/observed_to of every row. It returns
// the rejects of parts that did not convert; the rest is added.
func (b *InsightsBuilder) Add(p Person, key []byte, proc *Process, in *Insights) []extract.Reject {
	var rows []insight
	var rejects []extract.Reject
	text := func(metric, v string) {
		if v != "" {
			rows = append(rows, insight{metric: metric, text: p.redact.text(v)})
		}
	}
	text("status", proc.ConsentFlowStatus.Current.Code)
	text("consent", string(proc.Consent))
	text("market", proc.Market)
	text("psu_type", proc.PSUType)
	text("data_collection_type", proc.DataCollectionType)
	ssn, company := in.SocialSecurityNumber, in.CompanyID
	if ssn == "" {
		ssn = proc.SocialSecurityNumber
	}
	if company == "" {
		company = proc.CompanyID
	}
	if ssn != "" {
		rows = append(rows, insight{metric: "person_ref", text: PersonRef(key, ssn)})
	}
	if company != "" {
		rows = append(rows, insight{metric: "company_ref", text: PersonRef(key, company)})
	}
	for _, d := range in.TransactionGraph {
		day, err := transform.ParseDay(d.Date)
		if err != nil {
			rejects = append(rejects, b.reject(p, "graph/"+d.Date, "transactionGraph date "+err.Error(), nil))
			continue
		}
		period := day.Format(time.DateOnly)
		for _, m := range []struct {
			name string
			v    json.Number
		}{{"negative_sum", d.Info.NegativeSum}, {"positive_sum", d.Info.PositiveSum}} {
			if m.v == "" {
				continue
			}
			v, err := parseAmount(m.v, 6, 32)
			if err != nil {
				rejects = append(rejects, b.reject(p, "graph/"+period+"/"+m.name, m.name+" "+err.Error(), nil))
				continue
			}
			rows = append(rows, insight{metric: m.name, period: period, value: &v})
		}
	}
	count := func(metric string, n int) {
		v := decimal.NewFromInt(int64(n))
		rows = append(rows, insight{metric: metric, value: &v})
	}
	count("account_count", len(in.AccountsInfo))
	count("graph_days", len(in.TransactionGraph))
	objects := []member{{"totalBalance", in.TotalBalance}, {"categorisation", in.Categorisation}, {"computationAutomation", in.ComputationAutomation}}
	objects = append(objects, members("insights.", in.Extra)...)
	objects = append(objects, members("process.", proc.Extra)...)
	for _, obj := range objects {
		if len(obj.raw) == 0 || string(obj.raw) == "null" {
			continue
		}
		scrubbed, err := scrub(obj.raw)
		if err != nil {
			rejects = append(rejects, b.reject(p, obj.name, obj.name+": "+err.Error(), nil))
			continue
		}
		rows = append(rows, insight{metric: obj.name, raw: string(p.redact.bytes(scrubbed))})
		leaves, err := flatten(obj.name, scrubbed)
		if err != nil {
			rejects = append(rejects, b.reject(p, obj.name, obj.name+": "+err.Error(), scrubbed))
			continue
		}
		if len(leaves) == 1 && leaves[0].metric == obj.name {
			// A scalar: its value goes to the row that has its raw, not to a
			// second row of the same key.
			last := &rows[len(rows)-1]
			last.value, last.text = leaves[0].value, p.redact.text(leaves[0].text)
			continue
		}
		for _, l := range leaves {
			l.text = p.redact.text(l.text)
			rows = append(rows, l)
		}
	}

	var from, to any
	if iv := in.FetchedAtInterval; iv != nil && !iv.Min.IsZero() && !iv.Max.IsZero() {
		f, okF := transform.CalendarDay(iv.Min)
		t, okT := transform.CalendarDay(iv.Max)
		if okF && okT {
			from, to = f, t
		}
	}
	for _, r := range rows {
		var v any
		if r.value != nil {
			v = *r.value
		}
		if err := b.add(p.ProcessID, p.ProcessID, Module, p.ProcessID, r.metric, r.period, v, r.text, from, to,
			[]string{}, r.raw); err != nil {
			rejects = append(rejects, b.reject(p, r.metric+"/"+r.period, err.Error(), nil))
		}
	}
	return rejects
}

// member is a named JSON value of the insights document or the process.
type member struct {
	name string
	raw  json.RawMessage
}

// members lists the members of the JSON object extra (Unknown's result),
// in key order, their names prefixed.
func members(prefix string, extra json.RawMessage) []member {
	var m map[string]json.RawMessage
	if json.Unmarshal(extra, &m) != nil {
		return nil
	}
	out := make([]member, 0, len(m))
	for k, v := range m {
		out = append(out, member{prefix + k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// flatten lists the scalars of a JSON document as insights, metric = prefix
// plus the dotted path (array elements by index), in path order.
func flatten(prefix string, doc []byte) ([]insight, error) {
	var v any
	dec := json.NewDecoder(strings.NewReader(string(doc)))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	var out []insight
	var walk func(path string, v any) error
	walk = func(path string, v any) error {
		if len(out) >= maxLeaves {
			return fmt.Errorf("more than %d values", maxLeaves)
		}
		switch x := v.(type) {
		case map[string]any:
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				if err := walk(path+"."+k, x[k]); err != nil {
					return err
				}
			}
		case []any:
			for i, e := range x {
				if err := walk(path+"."+strconv.Itoa(i), e); err != nil {
					return err
				}
			}
		case json.Number:
			if d, err := parseAmount(x, 6, 32); err == nil {
				out = append(out, insight{metric: path, value: &d})
			} else {
				out = append(out, insight{metric: path, text: string(x)}) // too precise or too large: kept as text
			}
		case string:
			out = append(out, insight{metric: path, text: x})
		case bool:
			out = append(out, insight{metric: path, text: strconv.FormatBool(x)})
		}
		return nil
	}
	return out, walk(prefix, v)
}

// parseAmount reads a JSON number as an exact decimal with at most scale
// decimals (more are refused unless they are zeros) and fewer than
// intDigits integer digits, never through float64.
func parseAmount(n json.Number, scale int32, intDigits int32) (decimal.Decimal, error) {
	s := string(n)
	if s == "" {
		return decimal.Decimal{}, errors.New("missing")
	}
	if !json.Valid([]byte(s)) || strings.ContainsAny(s, `"{}[]tfn `) {
		return decimal.Decimal{}, fmt.Errorf("%q: not a number", s)
	}
	d, err := decimal.NewFromString(s)
	if err != nil {
		return decimal.Decimal{}, fmt.Errorf("%q: not a number", s)
	}
	// Rescaling 1e99999999 would build a number of a hundred million
	// digits: anything this far outside Decimal(38) is refused first.
	if e := d.Exponent(); e > 40 || e < -60 || d.NumDigits() > 60 {
		return decimal.Decimal{}, fmt.Errorf("%q: out of range", s)
	}
	t := d.Truncate(scale)
	if !t.Equal(d) {
		return decimal.Decimal{}, fmt.Errorf("%q: more than %d decimals", s, scale)
	}
	if t.Abs().Cmp(decimal.New(1, intDigits)) >= 0 {
		return decimal.Decimal{}, fmt.Errorf("%q: out of range", s)
	}
	return t, nil
}
