package fino

// Analytics modules → the long/narrow insights table: one row per fact,
// keyed by module (the normalized scope), insight_id (which account,
// partner, indicator, ... of the module; "" when it has one subject),
// metric (a dotted field path of the module's response) and period
// ("YYYY-MM" for a month, "YYYY-MM-DD" for a day, "" for the whole observed
// range). A monthly entry's metrics carry the same names as the module's
// overview: the period tells them apart. README lists every metric.
//
// Decoding is per element: a month, account or partner of the wrong type is
// one reject with its scrubbed raw text, its siblings still land. Unknown
// fields are ignored (they stay in raw); a missing optional number is a row
// with a NULL value. raw is the element a row came from, scrubbed of person
// names (paymentPartner.name, account owner).

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"slices"
	"strconv"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/decimal128"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/shopspring/decimal"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/transform"
)

// metricScale is the scale of insights.value: Decimal(38,6).
const (
	metricScale     = 6
	metricPrecision = 38
)

// analyticsScrub drops the person names analytics elements may carry.
var analyticsScrub = []scrubRule{
	{key: "paymentPartner", sub: []scrubRule{{key: "name"}}},
	{key: "account", sub: []scrubRule{{key: "owner"}}},
	{key: "owner"},
}

// InsightsBuilder converts analytics facts into rows of transform.Insights.
type InsightsBuilder struct {
	rowBuilder

	module, insightID, metric, period, valueText, raw *array.StringBuilder
	value                                             *array.Decimal128Builder
	observedFrom, observedTo                          *array.Date32Builder
	txIDs                                             *array.ListBuilder
	txID                                              *array.StringBuilder
}

// NewInsightsBuilder starts an empty insights record whose rows carry lin.
func NewInsightsBuilder(mem memory.Allocator, lin transform.Lineage) *InsightsBuilder {
	b := &InsightsBuilder{rowBuilder: newRowBuilder(mem, transform.Insights, lin)}
	r := &b.rowBuilder
	b.module = columnOf[*array.StringBuilder](r, "module")
	b.insightID = columnOf[*array.StringBuilder](r, "insight_id")
	b.metric = columnOf[*array.StringBuilder](r, "metric")
	b.period = columnOf[*array.StringBuilder](r, "period")
	b.value = columnOf[*array.Decimal128Builder](r, "value")
	b.valueText = columnOf[*array.StringBuilder](r, "value_text")
	b.observedFrom = columnOf[*array.Date32Builder](r, "observed_from")
	b.observedTo = columnOf[*array.Date32Builder](r, "observed_to")
	b.txIDs = columnOf[*array.ListBuilder](r, "transaction_ids")
	b.txID = b.txIDs.ValueBuilder().(*array.StringBuilder)
	b.raw = columnOf[*array.StringBuilder](r, "raw")
	r.ready()
	return b
}

// fact is one insights row before it is appended.
type fact struct {
	module, insightID, metric, period string
	value                             json.Number // "" = NULL
	text                              string
	txIDs                             []string
	raw                               []byte
}

// add appends f for userID or says why it cannot (nothing appended).
func (b *InsightsBuilder) add(userID, jobID string, from, to optDay, f fact) (reason string, ok bool) {
	if f.period != "" && !validPeriod(f.period) {
		return fmt.Sprintf("%s: period %q is neither YYYY-MM nor YYYY-MM-DD", f.metric, f.period), false
	}
	var num decimal128.Num
	if f.value != "" {
		var err error
		if num, err = parseMetric(f.value); err != nil {
			return f.metric + " " + err.Error(), false
		}
	}
	b.appendCommon(userID, jobID)
	appendString(b.module, f.module)
	appendString(b.insightID, f.insightID)
	appendString(b.metric, f.metric)
	appendString(b.period, f.period)
	if f.value == "" {
		b.value.AppendNull()
	} else {
		b.value.Append(num)
	}
	appendString(b.valueText, f.text)
	appendOptionalDay(b.observedFrom, from.v, from.ok)
	appendOptionalDay(b.observedTo, to.v, to.ok)
	b.txIDs.Append(true)
	for _, id := range f.txIDs {
		appendString(b.txID, id)
	}
	b.raw.BinaryBuilder.Append(f.raw)
	return "", true
}

// optDay is a nullable date.
type optDay struct {
	v  int32
	ok bool
}

// dayOf reads the day of "YYYY-MM-DD" or an RFC 3339 instant, in its own
// offset (parseDay); anything else is NULL (the observed range is context,
// not worth a reject).
func dayOf(s string) optDay {
	v, ok := parseDay(s)
	return optDay{v, ok}
}

func validPeriod(p string) bool {
	switch len(p) {
	case 7:
		_, ok := parseDay(p + "-01")
		return ok
	case 10:
		_, ok := parseDay(p)
		return ok
	}
	return false
}

// parseMetric reads a JSON number as an exact Decimal(38,6).
func parseMetric(n json.Number) (decimal128.Num, error) {
	d, err := decimal.NewFromString(string(n))
	if err != nil || !json.Valid([]byte(n)) {
		return decimal128.Num{}, fmt.Errorf("%q: not a decimal", string(n))
	}
	if !d.Round(metricScale).Equal(d) {
		return decimal128.Num{}, fmt.Errorf("%q: more than %d decimals", string(n), metricScale)
	}
	i := d.Shift(metricScale).BigInt()
	limit := new(big.Int).Exp(big.NewInt(10), big.NewInt(metricPrecision), nil)
	if new(big.Int).Abs(i).Cmp(limit) >= 0 {
		return decimal128.Num{}, fmt.Errorf("%q: out of the Decimal(38,6) range", string(n))
	}
	return decimal128.FromBigInt(i), nil
}

// insightSink is what a module transform writes to: rows of one module of
// one user, the rejects they caused, and (liquidity) monthly balances.
type insightSink struct {
	b        *InsightsBuilder
	bal      *BalancesBuilder
	user     string
	job      string
	module   string
	key      string // the module's member name: person modules' metric prefix
	from, to optDay
	raw      []byte // scrubbed raw of the current element
	rejects  []extract.Reject
}

func newInsightSink(b *InsightsBuilder, bal *BalancesBuilder, user, job string, m Module, span Timespan) *insightSink {
	return &insightSink{b: b, bal: bal, user: user, job: job, module: m.Name, key: m.Key, from: dayOf(span.From), to: dayOf(span.To)}
}

// span narrows the observed range to a module's own observedTimespan.
func (s *insightSink) span(t *Timespan) {
	if t != nil {
		s.from, s.to = dayOf(t.From), dayOf(t.To)
	}
}

// at makes raw the raw payload of the rows that follow.
func (s *insightSink) at(raw []byte) {
	s.raw = nil
	if scrubbed, err := scrubJSON(nil, raw, analyticsScrub); err == nil {
		s.raw = scrubbed
	}
}

func (s *insightSink) put(f fact) {
	f.module, f.raw = s.module, s.raw
	if reason, ok := s.b.add(s.user, s.job, s.from, s.to, f); !ok {
		key := s.module + "/" + f.insightID + "/" + f.metric + "/" + f.period
		s.rejects = append(s.rejects, s.b.reject(key, reason, s.raw, nil))
	}
}

// num adds a numeric fact; "" is a NULL value (a missing optional field).
func (s *insightSink) num(id, metric, period string, v json.Number, txIDs []string) {
	s.put(fact{insightID: id, metric: metric, period: period, value: v, txIDs: txIDs})
}

// text adds a textual fact.
func (s *insightSink) text(id, metric, period, text string) {
	s.put(fact{insightID: id, metric: metric, period: period, text: text})
}

// flag adds a boolean as 1/0 with its text; nil is NULL.
func (s *insightSink) flag(id, metric, period string, v *bool) {
	switch {
	case v == nil:
		s.put(fact{insightID: id, metric: metric, period: period})
	case *v:
		s.put(fact{insightID: id, metric: metric, period: period, value: "1", text: "true"})
	default:
		s.put(fact{insightID: id, metric: metric, period: period, value: "0", text: "false"})
	}
}

// sum adds a Sum's amount (with its transactions) and count.
func (s *insightSink) sum(id, prefix, period string, v *Sum) {
	if v == nil {
		return
	}
	s.num(id, prefix+"sum", period, v.Sum, v.TransactionIDs)
	s.num(id, prefix+"count", period, v.Count, nil)
}

// flow adds an overview of incomings, outgoings and totals.
func (s *insightSink) flow(id, period string, f *FlowOverview) {
	if f == nil {
		return
	}
	s.sum(id, "incomings.", period, f.Incomings)
	s.sum(id, "outgoings.", period, f.Outgoings)
	s.num(id, "totalTransactionAmount", period, f.TotalTransactionAmount, nil)
	s.num(id, "totalTransactionCount", period, f.TotalTransactionCount, nil)
}

// reject rejects a whole module part or element, keyed by module, user
// and the element's month, date or account when it names one.
func (s *insightSink) reject(raw []byte, reason string) {
	key := s.module + "/" + s.user
	for _, field := range []string{"month", "date", "code", "category"} {
		if v := extract.RejectKey(raw, field); v != "" {
			key += "/" + v
			break
		}
	}
	// Two accounts' bad months share a month: the text tells them apart.
	sum := sha256.Sum256(raw)
	key += "/" + hex.EncodeToString(sum[:4])
	s.rejects = append(s.rejects, s.b.reject(key, s.module+": "+reason, raw, analyticsScrub))
}

// bad rejects the elements of a list that did not decode.
func (s *insightSink) bad(what string, elems []BadElement) {
	for _, e := range elems {
		s.reject(e.Raw, "not a "+what+": "+e.Err.Error())
	}
}

// decodeModule decodes a module's part, or rejects it whole.
func decodeModule[T any](s *insightSink, raw json.RawMessage, what string) (T, bool) {
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		s.reject(raw, "not a "+what+": "+err.Error())
		return v, false
	}
	s.at(raw)
	return v, true
}

func boolPtr(b bool) *bool { return &b }

// The transforms, one per module family (Modules names which module uses
// which).

// personMonthly: an income, spending or risk module of a person.
// Metrics <key>.available, .average, .median; per month <key>.amount (with
// the transactions) and <key>.count.
func personMonthly(s *insightSink, raw json.RawMessage) {
	m, ok := decodeModule[PersonModule](s, raw, "person module")
	if !ok {
		return
	}
	s.flag("", s.key+".available", "", boolPtr(m.Available))
	s.num("", s.key+".average", "", m.Average, nil)
	s.num("", s.key+".median", "", m.Median, nil)
	s.bad("month", m.MonthlyOverview.Bad)
	for i, mo := range m.MonthlyOverview.Items {
		s.at(m.MonthlyOverview.Raw[i])
		s.num("", s.key+".amount", mo.Month, mo.Amount, mo.TransactionIDs)
		s.num("", s.key+".count", mo.Month, mo.Count, nil)
	}
}

// personOverdraft: overdraftAmount.days per month, overdraftAmount.amount
// per overdraft day.
func personOverdraft(s *insightSink, raw json.RawMessage) {
	m, ok := decodeModule[OverdraftModule](s, raw, "overdraft module")
	if !ok {
		return
	}
	s.bad("month", m.MonthlyOverview.Bad)
	for i, mo := range m.MonthlyOverview.Items {
		s.at(m.MonthlyOverview.Raw[i])
		s.num("", s.key+".days", mo.Month, mo.Days, nil)
		s.bad("overdraft day", mo.Items.Bad)
		for _, d := range mo.Items.Items {
			s.num("", s.key+".amount", d.Date, d.Amount, d.TransactionIDs)
		}
	}
}

// householdBudget: income.<source>, spending.<area> (monthly averages) and
// balance.
func householdBudget(s *insightSink, raw json.RawMessage) {
	h, ok := decodeModule[HouseholdBudget](s, raw, "household budget")
	if !ok {
		return
	}
	s.span(h.ObservedTimespan)
	for _, part := range []struct {
		name string
		m    map[string]json.Number
	}{{"income", h.Income}, {"spending", h.Spending}} {
		for _, k := range sortedKeys(part.m) {
			s.num("", part.name+"."+k, "", part.m[k], nil)
		}
	}
	s.num("", "balance", "", h.Balance, nil)
}

// adultCheck: decision (text); per indicator (insight_id) its strength.
func adultCheck(s *insightSink, raw json.RawMessage) {
	a, ok := decodeModule[AdultCheck](s, raw, "adult check")
	if !ok {
		return
	}
	s.span(a.ObservedTimespan)
	s.text("", "decision", "", a.Decision)
	s.bad("indicator", a.Indicators.Bad)
	for i, ind := range a.Indicators.Items {
		s.at(a.Indicators.Raw[i])
		s.put(fact{insightID: ind.Indicator, metric: "indicator.strength", text: ind.Strength, txIDs: ind.TransactionIDs})
	}
}

// livingSituation: <part>.detected (1/0) and <part>.monthlyAmount for
// children, motorVehicle, property and housingRent.
func livingSituation(s *insightSink, raw json.RawMessage) {
	l, ok := decodeModule[LivingSituation](s, raw, "living situation")
	if !ok {
		return
	}
	s.span(l.ObservedTimespan)
	for _, p := range []struct {
		name string
		part *LivingPart
	}{{"children", l.Children}, {"motorVehicle", l.MotorVehicle}, {"property", l.Property}, {"housingRent", l.HousingRent}} {
		if p.part == nil {
			continue
		}
		s.put(fact{metric: p.name + ".detected", value: flagValue(p.part.Detected), text: flagText(p.part.Detected), txIDs: p.part.TransactionIDs})
		s.num("", p.name+".monthlyAmount", "", p.part.MonthlyAmount, nil)
	}
}

func flagValue(b *bool) json.Number {
	switch {
	case b == nil:
		return ""
	case *b:
		return "1"
	}
	return "0"
}

func flagText(b *bool) string {
	if b == nil {
		return ""
	}
	return strconv.FormatBool(*b)
}

// cashTransactions: incomings.sum/.count, outgoings.sum/.count,
// totalTransactionAmount/Count, for the range and per month.
func cashTransactions(s *insightSink, raw json.RawMessage) {
	c, ok := decodeModule[CashTransactions](s, raw, "cash transactions document")
	if !ok {
		return
	}
	s.span(c.ObservedTimespan)
	s.flow("", "", c.Overview)
	s.bad("month", c.MonthlyOverview.Bad)
	for i, mo := range c.MonthlyOverview.Items {
		s.at(c.MonthlyOverview.Raw[i])
		s.flow("", mo.Month, &mo.FlowOverview)
	}
}

// liquidity: the flows of cashTransactions for all accounts (insight_id "")
// and per account (insight_id = accountId), plus per account and month
// endOfMonthBalance, minBalance and maxBalance, which also land in
// account_balances (granularity month_end, month_min, month_max, dated the
// month's last day).
func liquidity(s *insightSink, raw json.RawMessage) {
	l, ok := decodeModule[Liquidity](s, raw, "liquidity document")
	if !ok {
		return
	}
	s.span(l.ObservedTimespan)
	s.flow("", "", l.Overview)
	s.bad("account", l.AccountLiquidity.Bad)
	for i, acc := range l.AccountLiquidity.Items {
		id := acc.Account.AccountID
		if id == "" {
			s.reject(l.AccountLiquidity.Raw[i], "account.accountId missing")
			continue
		}
		s.at(l.AccountLiquidity.Raw[i])
		s.flow(id, "", acc.Overview)
		s.bad("month", acc.MonthlyOverview.Bad)
		for j, mo := range acc.MonthlyOverview.Items {
			s.at(acc.MonthlyOverview.Raw[j])
			s.flow(id, mo.Month, &mo.FlowMonth.FlowOverview)
			for _, b := range []struct {
				metric, granularity string
				v                   json.Number
			}{{"endOfMonthBalance", "month_end", mo.EndOfMonthBalance}, {"minBalance", "month_min", mo.MinBalance}, {"maxBalance", "month_max", mo.MaxBalance}} {
				s.num(id, b.metric, mo.Month, b.v, nil)
				if b.v == "" || s.bal == nil || !validPeriod(mo.Month) || len(mo.Month) != 7 {
					continue
				}
				if rej, ok := s.bal.addMonth(s.user, id, b.granularity, mo.Month, b.v, acc.Account.Currency); !ok {
					s.rejects = append(s.rejects, rej)
				}
			}
		}
	}
}

// foreignPayments: the overview's flows, and per country (insight_id = the
// ISO code) incomings.sum/.count and outgoings.sum/.count.
func foreignPayments(s *insightSink, raw json.RawMessage) {
	f, ok := decodeModule[ForeignPayments](s, raw, "foreign payments document")
	if !ok {
		return
	}
	s.span(f.ObservedTimespan)
	s.flow("", "", f.Overview)
	s.bad("country", f.ByState.Bad)
	for i, st := range f.ByState.Items {
		s.at(f.ByState.Raw[i])
		s.sum(st.Code, "incomings.", "", st.Incomings)
		s.sum(st.Code, "outgoings.", "", st.Outgoings)
	}
}

// companyRisk: per account (insight_id) and month backDebit.count and
// garnishment.count (with their transactions) and overdraftDays.
func companyRisk(s *insightSink, raw json.RawMessage) {
	r, ok := decodeModule[CompanyRisk](s, raw, "company risk document")
	if !ok {
		return
	}
	s.span(r.ObservedTimespan)
	s.bad("account", r.AccountRisks.Bad)
	for i, acc := range r.AccountRisks.Items {
		s.at(r.AccountRisks.Raw[i])
		s.bad("month", acc.MonthlyOverview.Bad)
		for j, mo := range acc.MonthlyOverview.Items {
			s.at(acc.MonthlyOverview.Raw[j])
			id := acc.Account.AccountID
			if mo.BackDebit != nil {
				s.num(id, "backDebit.count", mo.Month, mo.BackDebit.Count, mo.BackDebit.TransactionIDs)
			}
			if mo.Garnishment != nil {
				s.num(id, "garnishment.count", mo.Month, mo.Garnishment.Count, mo.Garnishment.TransactionIDs)
			}
			s.num(id, "overdraftDays", mo.Month, mo.OverdraftDays, nil)
		}
	}
}

// categoryBreakdown (credits, insurances, investments, internal bookings):
// available, current, median, average, contractSummary.count; per month
// amount, recurringAmount and nonRecurringAmount with their transactions.
func categoryBreakdown(s *insightSink, raw json.RawMessage) {
	c, ok := decodeModule[CategoryBreakdown](s, raw, "category breakdown")
	if !ok {
		return
	}
	s.span(c.ObservedTimespan)
	s.flag("", "available", "", c.Available)
	s.num("", "current", "", c.Current, nil)
	s.num("", "median", "", c.Median, nil)
	s.num("", "average", "", c.Average, nil)
	s.num("", "contractSummary.count", "", json.Number(strconv.Itoa(len(c.ContractSummary))), nil)
	s.bad("month", c.MonthlyOverview.Bad)
	for i, mo := range c.MonthlyOverview.Items {
		s.at(c.MonthlyOverview.Raw[i])
		s.num("", "amount", mo.Month, mo.Amount, slices.Concat(mo.RecurringTransactionIDs, mo.NonRecurringTransactionIDs))
		s.num("", "recurringAmount", mo.Month, mo.RecurringAmount, mo.RecurringTransactionIDs)
		s.num("", "nonRecurringAmount", mo.Month, mo.NonRecurringAmount, mo.NonRecurringTransactionIDs)
	}
}

// staff: salary.totalMonthly (with sources.transactionIDs),
// salary.totalMonthlyExpenses, salary.totalMonthlyAdditionalWageCosts,
// employees.minNumberOfEmployees/maxNumberOfEmployees,
// sources.contracts.count.
func staff(s *insightSink, raw json.RawMessage) {
	st, ok := decodeModule[Staff](s, raw, "staff document")
	if !ok {
		return
	}
	s.span(st.ObservedTimespan)
	s.num("", "salary.totalMonthly", "", st.Salary.TotalMonthly, st.Sources.TransactionIDs)
	s.num("", "salary.totalMonthlyExpenses", "", st.Salary.TotalMonthlyExpenses, nil)
	s.num("", "salary.totalMonthlyAdditionalWageCosts", "", st.Salary.TotalMonthlyAdditionalWageCosts, nil)
	s.num("", "employees.minNumberOfEmployees", "", st.Employees.MinNumberOfEmployees, nil)
	s.num("", "employees.maxNumberOfEmployees", "", st.Employees.MaxNumberOfEmployees, nil)
	s.num("", "sources.contracts.count", "", json.Number(strconv.Itoa(len(st.Sources.Contracts))), nil)
}

// customerSupplier: per partner (insight_id customers/<IBAN> or
// suppliers/<IBAN>; without an IBAN .../rank-<n>) paymentPartner.name
// (text), ranking.*, sum and count for the range and per month.
func customerSupplier(s *insightSink, raw json.RawMessage) {
	c, ok := decodeModule[CustomerSupplier](s, raw, "customer-supplier document")
	if !ok {
		return
	}
	s.span(c.ObservedTimespan)
	for _, side := range []struct {
		name string
		l    *List[Partner]
	}{{"customers", &c.Customers.PartnerList}, {"suppliers", &c.Suppliers.PartnerList}} {
		s.bad("partner", side.l.Bad)
		for i, p := range side.l.Items {
			s.at(side.l.Raw[i])
			id := side.name + "/" + p.PaymentPartner.IBAN
			if p.PaymentPartner.IBAN == "" {
				id = fmt.Sprintf("%s/rank-%d", side.name, i+1)
			}
			// The name lands like transactions.counterparty_name; raw drops it.
			s.text(id, "paymentPartner.name", "", p.PaymentPartner.Name)
			for _, r := range []struct {
				metric string
				v      json.Number
			}{{"rank", p.Ranking.Rank}, {"revenueRank", p.Ranking.RevenueRank}, {"revenueScore", p.Ranking.RevenueScore},
				{"occurrenceRank", p.Ranking.OccurrenceRank}, {"occurrenceScore", p.Ranking.OccurrenceScore}} {
				s.num(id, "ranking."+r.metric, "", r.v, nil)
			}
			s.sum(id, "", "", &p.Total)
			s.bad("month", p.MonthlyOverview.Bad)
			for _, mo := range p.MonthlyOverview.Items {
				s.sum(id, "", mo.Month, &mo.Sum)
			}
		}
	}
}

// topCategories: per category (insight_id) paymentType (text) and amount
// per month and per day (with the day's transactions).
func topCategories(s *insightSink, raw json.RawMessage) {
	t, ok := decodeModule[TopCategories](s, raw, "top categories document")
	if !ok {
		return
	}
	s.span(t.ObservedTimespan)
	s.bad("category", t.Categories.Bad)
	for i, c := range t.Categories.Items {
		s.at(t.Categories.Raw[i])
		s.text(c.Category, "paymentType", "", c.PaymentType)
		s.bad("month", c.MonthlyOverview.Bad)
		for _, mo := range c.MonthlyOverview.Items {
			s.num(c.Category, "amount", mo.Month, mo.Amount, nil)
			s.bad("day", mo.DailyOverview.Bad)
			for _, d := range mo.DailyOverview.Items {
				s.num(c.Category, "amount", d.Date, d.Amount, d.TransactionIDs)
			}
		}
	}
}

// cockpit flattens a cockpit's sections: every number, string and boolean
// becomes a fact whose metric is its dotted path (section first); an object
// with a "month" or "date" member sets the period of what it holds; other
// array elements are numbered path[i]. One more row, metric "sections",
// lists them and carries the scrubbed cockpit as raw. Rows carry no raw of
// their own: the layout is the tenant's (Cockpits > Configuration).
func cockpit(s *insightSink, raw json.RawMessage) {
	c, ok := decodeModule[Cockpit](s, raw, "cockpit")
	if !ok {
		return
	}
	s.span(c.ObservedTimespan)
	names := sortedKeys(c.Sections)
	whole := s.raw
	s.raw = nil
	for _, name := range names {
		flatten(s, name, "", c.Sections[name], 0)
	}
	s.raw = whole
	joined, _ := json.Marshal(names)
	s.text("", "sections", "", string(joined))
}

// maxCockpitDepth bounds the recursion on hostile input.
const maxCockpitDepth = 12

func flatten(s *insightSink, path, period string, raw json.RawMessage, depth int) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || depth > maxCockpitDepth {
		return
	}
	switch raw[0] {
	case '{':
		var m map[string]json.RawMessage
		if json.Unmarshal(raw, &m) != nil {
			return
		}
		for _, k := range []string{"month", "date"} {
			var p string
			if json.Unmarshal(m[k], &p) == nil && p != "" {
				period = p
				delete(m, k)
			}
		}
		for _, k := range sortedKeys(m) {
			flatten(s, path+"."+k, period, m[k], depth+1)
		}
	case '[':
		var elems []json.RawMessage
		if json.Unmarshal(raw, &elems) != nil {
			return
		}
		for i, e := range elems {
			p := fmt.Sprintf("%s[%d]", path, i)
			if periodic(e) {
				p = path
			}
			flatten(s, p, period, e, depth+1)
		}
	case '"':
		var v string
		json.Unmarshal(raw, &v)
		s.text("", path, period, v)
	case 't', 'f':
		s.flag("", path, period, boolPtr(raw[0] == 't'))
	case 'n':
	default:
		s.num("", path, period, json.Number(raw), nil)
	}
}

// periodic tells whether an array element is an object with a month or date.
func periodic(raw json.RawMessage) bool {
	var m struct{ Month, Date string }
	return json.Unmarshal(raw, &m) == nil && (m.Month != "" || m.Date != "")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// addMonth appends a month-level balance of accountID: granularity
// month_end, month_min or month_max, dated the last day of month (YYYY-MM).
func (b *BalancesBuilder) addMonth(userID, accountID, granularity, month string, balance json.Number, currency string) (extract.Reject, bool) {
	first, ok := parseDay(month + "-01")
	if !ok || len(month) != len("2006-01") {
		return b.reject(accountID+"/"+month, badDay("month", month), nil, nil), false
	}
	t := arrow.Date32(first).ToTime()
	last := arrow.Date32FromTime(t.AddDate(0, 1, -1))
	return b.add(userID, accountID, granularity, int32(last), DailyBalance{Date: month, Balance: balance}, currency)
}
