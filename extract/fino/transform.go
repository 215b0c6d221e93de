package fino

// Converters from decoded finoOS objects to Arrow records of the common
// schema (its conventions: package transform). They run for millions
// of transactions, so each builder resolves its typed column builders once
// and a row costs no allocation beyond the builders' amortized growth.
// They are strict: a record that cannot be converted exactly is returned as
// an extract.Reject and leaves no half row behind.
//
// Scrubbing of raw payloads (person names never land in clear):
//   - transactions.raw drops transaction.paymentPartner.name and
//     transaction.differentCreditor/differentDebitor. They can be private
//     persons; the counterparty's name is in counterparty_name already,
//     except on transfers between the user's own accounts (tag
//     internal_transfer, or a partner named as one of the user's account
//     holders): their partner is the account holder, and counterparty_name
//     says OwnAccount instead.
//   - accounts.raw drops owner (the account holder, a person), transactions
//     (loaded through the transactions stream) and standingOrders (schema
//     undocumented; standing orders name payees, often persons).
//   - contracts.raw is kept whole: contract partners are counterparties,
//     like counterparty_name.
//   - "_wrapper", what the object around the records held beyond them
//     (assumption 50), is scrubbed by the same rules before it is added.
//
// Keys are matched case-insensitively, and escaped keys are unescaped first,
// because encoding/json decodes "Owner" or "\u006fwner" into Owner too: a
// scrubber that compared bytes exactly could be walked around.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"unicode/utf8"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/decimal128"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/extract/pii"
	"github.com/finsync/finsync/transform"
)

// defaultCurrency is finoOS's currency when none is given (raw transaction:
// "currency (default EUR)"); accounts and balances follow it.
const defaultCurrency = "EUR"

// rowBuilder is what the four builders share: the record builder, the
// columns every table has (provider, tenant, user_id and the lineage) and a
// scratch buffer for scrubbed raw JSON.
type rowBuilder struct {
	table    transform.Table
	rb       *array.RecordBuilder
	resolved []bool // columns a builder took, checked by ready
	lin      transform.Lineage
	scratch  []byte

	// The next record reserves the size the last one reached, instead of
	// doubling its way up again: that halves the bytes a long run allocates
	// and copies. reserveRows > 0 means a reservation is pending.
	reserveRows int
	reserve     []reservation

	provider, tenant, userID, jobID, runID *array.StringBuilder
	extractedAt                            *array.TimestampBuilder
	version                                *array.Uint64Builder
}

func newRowBuilder(mem memory.Allocator, t transform.Table, lin transform.Lineage) rowBuilder {
	r := rowBuilder{
		table:    t,
		rb:       array.NewRecordBuilder(mem, t.Schema),
		resolved: make([]bool, t.Schema.NumFields()),
		lin:      lin,
	}
	r.provider = columnOf[*array.StringBuilder](&r, "provider")
	r.tenant = columnOf[*array.StringBuilder](&r, "tenant")
	r.userID = columnOf[*array.StringBuilder](&r, "user_id")
	r.jobID = columnOf[*array.StringBuilder](&r, "source_job_id")
	r.runID = columnOf[*array.StringBuilder](&r, "run_id")
	r.extractedAt = columnOf[*array.TimestampBuilder](&r, "extracted_at")
	r.version = columnOf[*array.Uint64Builder](&r, "_version")
	return r
}

// columnOf returns the typed builder of column name. A schema that lacks the
// column or has another type is a programming error the tests catch.
func columnOf[T array.Builder](r *rowBuilder, name string) T {
	idx := r.table.Schema.FieldIndices(name)
	if len(idx) != 1 {
		panic(fmt.Sprintf("fino: table %s has no column %s", r.table.Name, name))
	}
	b, ok := r.rb.Field(idx[0]).(T)
	if !ok {
		panic(fmt.Sprintf("fino: %s.%s is built by %T", r.table.Name, name, r.rb.Field(idx[0])))
	}
	r.resolved[idx[0]] = true
	return b
}

// ready ends a constructor. It panics if a column has no builder: a column
// added to the schema would otherwise stay empty and NewRecord would panic
// on the first row instead of the constructor on the first test. Then it
// lists the string columns whose sizes NewRecord remembers.
func (r *rowBuilder) ready() {
	for i, ok := range r.resolved {
		if !ok {
			panic(fmt.Sprintf("fino: the %s builder fills no column %s", r.table.Name, r.table.Schema.Field(i).Name))
		}
	}
	r.resolved = nil
	for _, f := range r.rb.Fields() {
		if l, ok := f.(*array.ListBuilder); ok {
			f = l.ValueBuilder()
		}
		if sb, ok := f.(*array.StringBuilder); ok {
			r.reserve = append(r.reserve, reservation{b: sb})
		}
	}
}

// reservation is the size one string column reached: values and bytes.
type reservation struct {
	b          *array.StringBuilder
	rows, data int
}

// appendCommon appends the columns every table has.
func (r *rowBuilder) appendCommon(userID, jobID string) {
	if r.reserveRows > 0 {
		// A quarter more than last time: a record a little larger than
		// the one before would otherwise double its buffers, and half of
		// that memory would ride along to the loader unused.
		r.rb.Reserve(r.reserveRows + r.reserveRows/4)
		for _, res := range r.reserve {
			res.b.Reserve(res.rows + res.rows/4)
			res.b.ReserveData(res.data + res.data/4)
		}
		r.reserveRows = 0
	}
	appendString(r.provider, provider)
	appendString(r.tenant, r.lin.Tenant)
	appendString(r.userID, userID)
	appendString(r.jobID, jobID)
	appendString(r.runID, r.lin.RunID)
	r.extractedAt.Append(arrow.Timestamp(r.lin.ExtractedAt.Unix()))
	r.version.Append(r.lin.Version)
}

// Len is the number of rows appended since the last NewRecord.
func (r *rowBuilder) Len() int { return r.provider.Len() }

// Bytes estimates the memory of the rows appended since the last NewRecord:
// their string bytes plus 8 bytes a column and row for the rest.
func (r *rowBuilder) Bytes() int {
	n := r.Len() * 8 * r.table.Schema.NumFields()
	for _, res := range r.reserve {
		n += res.b.DataLen()
	}
	return n
}

// NewRecord returns the rows appended so far (the caller releases the
// record) and starts an empty one.
func (r *rowBuilder) NewRecord() arrow.Record {
	r.reserveRows = r.Len()
	for i := range r.reserve {
		res := &r.reserve[i]
		res.rows, res.data = res.b.Len(), res.b.DataLen()
	}
	return r.rb.NewRecord()
}

// Release frees the builder's memory.
func (r *rowBuilder) Release() { r.rb.Release() }

// reject builds the Reject of a record bound for this table (keyed by its
// payload when it has no id: extract.RawKey), its raw
// payload scrubbed by rules (nil: kept as is) and copied, since the caller
// may reuse its buffer. Raw that cannot be scrubbed is dropped: an unscanned
// payload may hold exactly what scrubbing removes.
func (r *rowBuilder) reject(key, reason string, raw []byte, rules []scrubRule) extract.Reject {
	if key == "" {
		key = extract.RawKey(raw)
	}
	rej := extract.Reject{Table: r.table.Name, Key: key, Reason: reason}
	switch {
	case len(raw) == 0:
	case rules == nil:
		rej.Raw = bytes.Clone(raw)
	default:
		scrubbed, err := scrubJSON(nil, raw, rules)
		if err != nil {
			rej.Reason += " (raw dropped: it cannot be scrubbed)"
		} else {
			rej.Raw = scrubbed
		}
	}
	return rej
}

// scrubRaw scrubs raw into the scratch buffer, valid until the next call.
func (r *rowBuilder) scrubRaw(raw []byte, rules []scrubRule) ([]byte, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	var err error
	r.scratch, err = scrubJSON(r.scratch[:0], raw, rules)
	return r.scratch, err
}

// TransactionsBuilder converts categorizations into rows of
// transform.Transactions.
type TransactionsBuilder struct {
	rowBuilder
	cats  categories
	scrub []scrubRule
	// holders are the names holderUser's accounts are held in (SetHolders).
	holderUser string
	holders    *pii.Holders

	transactionID, accountID                      *array.StringBuilder
	bookingDate, valueDate                        *array.Date32Builder
	amount                                        *array.Decimal128Builder
	currency, description, bookingText, purpose   *array.StringBuilder
	cpName, cpIBAN, cpBIC, creditorID             *array.StringBuilder
	eref, mref, mcc                               *array.StringBuilder
	category, providerCategory, categoryLocalized *array.StringBuilder
	tags                                          *array.ListBuilder
	tagValues                                     *array.StringBuilder
	merchant, raw                                 *array.StringBuilder
}

// NewTransactionsBuilder starts an empty transactions record whose rows
// carry lin.
func NewTransactionsBuilder(mem memory.Allocator, lin transform.Lineage) *TransactionsBuilder {
	b := &TransactionsBuilder{rowBuilder: newRowBuilder(mem, transform.Transactions, lin), cats: newCategories()}
	b.scrub = []scrubRule{{key: "transaction", sub: []scrubRule{
		{key: "paymentPartner", sub: []scrubRule{{key: "name"}}},
		{key: "differentCreditor"},
		{key: "differentDebitor"},
	}}}
	r := &b.rowBuilder
	b.transactionID = columnOf[*array.StringBuilder](r, "transaction_id")
	b.accountID = columnOf[*array.StringBuilder](r, "account_id")
	b.bookingDate = columnOf[*array.Date32Builder](r, "booking_date")
	b.valueDate = columnOf[*array.Date32Builder](r, "value_date")
	b.amount = columnOf[*array.Decimal128Builder](r, "amount")
	b.currency = columnOf[*array.StringBuilder](r, "currency")
	b.description = columnOf[*array.StringBuilder](r, "description")
	b.bookingText = columnOf[*array.StringBuilder](r, "booking_text")
	b.purpose = columnOf[*array.StringBuilder](r, "purpose")
	b.cpName = columnOf[*array.StringBuilder](r, "counterparty_name")
	b.cpIBAN = columnOf[*array.StringBuilder](r, "counterparty_iban")
	b.cpBIC = columnOf[*array.StringBuilder](r, "counterparty_bic")
	b.creditorID = columnOf[*array.StringBuilder](r, "creditor_id")
	b.eref = columnOf[*array.StringBuilder](r, "eref")
	b.mref = columnOf[*array.StringBuilder](r, "mref")
	b.mcc = columnOf[*array.StringBuilder](r, "mcc")
	b.category = columnOf[*array.StringBuilder](r, "category")
	b.providerCategory = columnOf[*array.StringBuilder](r, "provider_category")
	b.categoryLocalized = columnOf[*array.StringBuilder](r, "category_localized")
	b.tags = columnOf[*array.ListBuilder](r, "tags")
	b.tagValues = b.tags.ValueBuilder().(*array.StringBuilder)
	b.merchant = columnOf[*array.StringBuilder](r, "merchant")
	b.raw = columnOf[*array.StringBuilder](r, "raw")
	r.ready()
	return b
}

// Add appends one categorization of userID. correlationID goes to
// source_job_id. raw is the item's JSON as received. A record that cannot
// be converted is returned as a Reject (ok=false) and nothing is appended.
//
// Mapping: the dates are the days of the raw transaction's timestamps, in
// the offset they were written in, UTC for Unix seconds (assumption 22;
// value_date NULL when absent or 0); amount is the exact decimal; currency
// defaults to EUR; description is purpose, or bookingText when there is
// none (both also have their own columns); counterparty_* and creditor_id
// come from paymentPartner; provider_category is descriptiveTag (tags[0] if
// that is empty) and category its common category; merchant stays ""
// (finoOS names none). Without the raw transaction the amount is unknown: a
// reject.
func (b *TransactionsBuilder) Add(userID, correlationID string, c Categorization, raw []byte) (rej extract.Reject, ok bool) {
	return b.add(userID, correlationID, c, raw, nil)
}

// add is Add given raw already scrubbed (nil: not yet).
func (b *TransactionsBuilder) add(userID, correlationID string, c Categorization, raw, scrubbed []byte) (rej extract.Reject, ok bool) {
	fail := func(reason string) (extract.Reject, bool) {
		return b.reject(c.TransactionID, reason, raw, b.scrub), false
	}
	t := c.Transaction
	switch {
	case c.TransactionID == "":
		return fail("transactionId missing")
	case c.AccountID == "":
		return fail("accountId missing")
	case t == nil:
		return fail("no raw transaction: amount unknown")
	case t.TransactionID != "" && t.TransactionID != c.TransactionID:
		return fail(fmt.Sprintf("transaction.transactionId %q differs from transactionId %q", t.TransactionID, c.TransactionID))
	}
	amount, err := parseMoney(t.Amount)
	if err != nil {
		return fail("amount " + err.Error())
	}
	if t.BookingDate.IsZero() {
		return fail("transaction.bookingDate missing")
	}
	booking, ok := t.BookingDate.day()
	if !ok {
		return fail(badTimestamp("transaction.bookingDate", t.BookingDate))
	}
	value, ok := t.ValueDate.day()
	if !t.ValueDate.IsZero() && !ok {
		return fail(badTimestamp("transaction.valueDate", t.ValueDate))
	}
	if scrubbed == nil {
		var err error
		if scrubbed, err = b.scrubRaw(raw, b.scrub); err != nil {
			return fail("raw: " + err.Error())
		}
	}

	// Everything is checked: from here on the row is appended whole.
	b.appendCommon(userID, correlationID)
	appendString(b.transactionID, c.TransactionID)
	appendString(b.accountID, c.AccountID)
	b.bookingDate.Append(arrow.Date32(booking))
	if t.ValueDate.IsZero() {
		b.valueDate.AppendNull()
	} else {
		b.valueDate.Append(arrow.Date32(value))
	}
	b.amount.Append(decimal128.FromI64(amount))
	appendString(b.currency, orDefault(t.Currency, defaultCurrency))
	appendString(b.description, orDefault(t.Purpose, t.BookingText))
	appendString(b.bookingText, t.BookingText)
	appendString(b.purpose, t.Purpose)
	var p PaymentPartner
	if t.PaymentPartner != nil {
		p = *t.PaymentPartner
	}
	if ownAccount(c) || userID == b.holderUser && b.holders.Named(p.Name) {
		p.Name = OwnAccount
	}
	appendString(b.cpName, p.Name)
	appendString(b.cpIBAN, p.IBAN)
	appendString(b.cpBIC, p.BIC)
	appendString(b.creditorID, p.CreditorID)
	appendString(b.eref, t.EndToEndReference)
	appendString(b.mref, t.MandateReference)
	appendString(b.mcc, t.MerchantCategoryCode)
	appendString(b.category, b.cats.forTags(c.DescriptiveTag, c.Tags))
	providerCategory := c.DescriptiveTag
	if providerCategory == "" && len(c.Tags) > 0 {
		providerCategory = c.Tags[0]
	}
	appendString(b.providerCategory, providerCategory)
	appendString(b.categoryLocalized, c.LocalizedTag)
	b.tags.Append(true)
	for _, tag := range c.Tags {
		appendString(b.tagValues, tag)
	}
	appendString(b.merchant, "")
	b.raw.BinaryBuilder.Append(scrubbed)
	return extract.Reject{}, true
}

// OwnAccount is counterparty_name of a transfer between the user's own
// accounts: its partner is the account holder, a person's name that must
// not land in clear. finoOS does not always tag such a transfer
// internal_transfer, so a partner named as one of the user's account
// holders (SetHolders; in any spelling: "MUELLER ANNA" for Anna Müller)
// is one too.
const OwnAccount = "(own account)"

// SetHolders tells the builder the names userID's accounts are held in
// (their owner), until the next call: a transaction of userID whose
// partner has one of these names gets counterparty_name OwnAccount.
func (b *TransactionsBuilder) SetHolders(userID string, names []string) {
	b.holderUser, b.holders = userID, pii.NewHolders(names...)
}

// ownAccount tells a transfer between the user's own accounts: finoOS tags
// it internal_transfer (descriptiveTag or tags[]; categories.csv).
func ownAccount(c Categorization) bool {
	if c.DescriptiveTag == tagInternalTransfer {
		return true
	}
	for _, t := range c.Tags {
		if t == tagInternalTransfer {
			return true
		}
	}
	return false
}

const tagInternalTransfer = "internal_transfer"

// AccountsBuilder converts detected accounts into rows of transform.Accounts.
type AccountsBuilder struct {
	rowBuilder
	scrub []scrubRule

	accountID, accountType, providerAccountType, name *array.StringBuilder
	iban, accountNumber, bankCode, bankName, bic      *array.StringBuilder
	currency                                          *array.StringBuilder
	balance, overdraftLimit                           *array.Decimal128Builder
	isUserAdded                                       *array.BooleanBuilder
	creditorID, raw                                   *array.StringBuilder
}

// NewAccountsBuilder starts an empty accounts record whose rows carry lin.
func NewAccountsBuilder(mem memory.Allocator, lin transform.Lineage) *AccountsBuilder {
	b := &AccountsBuilder{rowBuilder: newRowBuilder(mem, transform.Accounts, lin)}
	b.scrub = []scrubRule{{key: "owner"}, {key: "transactions"}, {key: "standingOrders"}}
	r := &b.rowBuilder
	b.accountID = columnOf[*array.StringBuilder](r, "account_id")
	b.accountType = columnOf[*array.StringBuilder](r, "account_type")
	b.providerAccountType = columnOf[*array.StringBuilder](r, "provider_account_type")
	b.name = columnOf[*array.StringBuilder](r, "name")
	b.iban = columnOf[*array.StringBuilder](r, "iban")
	b.accountNumber = columnOf[*array.StringBuilder](r, "account_number")
	b.bankCode = columnOf[*array.StringBuilder](r, "bank_code")
	b.bankName = columnOf[*array.StringBuilder](r, "bank_name")
	b.bic = columnOf[*array.StringBuilder](r, "bic")
	b.currency = columnOf[*array.StringBuilder](r, "currency")
	b.balance = columnOf[*array.Decimal128Builder](r, "balance")
	b.overdraftLimit = columnOf[*array.Decimal128Builder](r, "overdraft_limit")
	b.isUserAdded = columnOf[*array.BooleanBuilder](r, "is_user_added")
	b.creditorID = columnOf[*array.StringBuilder](r, "creditor_id")
	b.raw = columnOf[*array.StringBuilder](r, "raw")
	r.ready()
	return b
}

// Add appends one account of userID from account detection; credit tells
// that it came from creditsView. raw is the account's JSON as received. A
// record that cannot be converted is returned as a Reject (ok=false) and
// nothing is appended. source_job_id stays "": the call names no job.
//
// Mapping: account_type is the normalized type (accountType); balance and
// overdraft_limit are NULL when absent; is_user_added is NULL without
// additionalAnalysesInfo; creditor_id is read at the account or inside
// additionalAnalysesInfo (the docs' example uses both); currency defaults
// to EUR. owner, a person's name, is stored nowhere. An account found by
// analysis has accountId "" (docs' example), so it is keyed
// "creditor:<creditorId>" to stay one row across runs.
func (b *AccountsBuilder) Add(userID string, a DetectedAccount, credit bool, raw []byte) (rej extract.Reject, ok bool) {
	creditorID := a.CreditorID
	if creditorID == "" && a.AdditionalAnalysesInfo != nil && a.AdditionalAnalysesInfo.CreditorID != nil {
		creditorID = *a.AdditionalAnalysesInfo.CreditorID
	}
	id := a.AccountID
	if id == "" && creditorID != "" {
		id = "creditor:" + creditorID
	}
	fail := func(reason string) (extract.Reject, bool) {
		return b.reject(id, reason, raw, b.scrub), false
	}
	if id == "" {
		return fail("accountId missing and no creditorId to key the account by")
	}
	balance, hasBalance, err := parseOptionalMoney(a.Balance)
	if err != nil {
		return fail("balance " + err.Error())
	}
	var limit json.Number
	if a.Overdraft != nil {
		limit = a.Overdraft.Amount
	}
	overdraft, hasOverdraft, err := parseOptionalMoney(limit)
	if err != nil {
		return fail("overdraft.amount " + err.Error())
	}
	scrubbed, err := b.scrubRaw(raw, b.scrub)
	if err != nil {
		return fail("raw: " + err.Error())
	}

	b.appendCommon(userID, "")
	appendString(b.accountID, id)
	appendString(b.accountType, accountType(a.Type, credit))
	appendString(b.providerAccountType, string(a.Type))
	appendString(b.name, a.Name)
	appendString(b.iban, a.IBAN)
	appendString(b.accountNumber, a.AccountNumber)
	appendString(b.bankCode, a.BankCode)
	appendString(b.bankName, a.BankName)
	appendString(b.bic, a.BIC)
	appendString(b.currency, orDefault(a.Currency, defaultCurrency))
	appendOptionalMoney(b.balance, balance, hasBalance)
	appendOptionalMoney(b.overdraftLimit, overdraft, hasOverdraft)
	if a.AdditionalAnalysesInfo == nil {
		b.isUserAdded.AppendNull()
	} else {
		b.isUserAdded.Append(a.AdditionalAnalysesInfo.IsUserAdded)
	}
	appendString(b.creditorID, creditorID)
	b.raw.BinaryBuilder.Append(scrubbed)
	return extract.Reject{}, true
}

// accountType normalizes finoOS's account type into the common schema's
// account kinds. A type that names no kind stays "other", except in
// creditsView, which lists credits: there it is a loan.
func accountType(t AccountType, credit bool) string {
	switch t {
	case AccountGiro:
		return "checking"
	case AccountKreditKarte:
		return "credit_card"
	case AccountTagesgeld, AccountSparbuch, AccountFestgeld:
		return "savings"
	case AccountDepot, AccountFondsdepot:
		return "depot"
	case AccountKreditKonto, AccountKreditdarlehen:
		return "loan"
	case AccountBausparen:
		return "building_savings"
	}
	if credit {
		return "loan"
	}
	return "other"
}

// BalancesBuilder converts daily balances into rows of
// transform.AccountBalances with granularity "day".
type BalancesBuilder struct {
	rowBuilder

	accountID, granularity, currency *array.StringBuilder
	balanceDate                      *array.Date32Builder
	balance                          *array.Decimal128Builder
}

// NewBalancesBuilder starts an empty account_balances record whose rows
// carry lin.
func NewBalancesBuilder(mem memory.Allocator, lin transform.Lineage) *BalancesBuilder {
	b := &BalancesBuilder{rowBuilder: newRowBuilder(mem, transform.AccountBalances, lin)}
	r := &b.rowBuilder
	b.accountID = columnOf[*array.StringBuilder](r, "account_id")
	b.granularity = columnOf[*array.StringBuilder](r, "granularity")
	b.balanceDate = columnOf[*array.Date32Builder](r, "balance_date")
	b.balance = columnOf[*array.Decimal128Builder](r, "balance")
	b.currency = columnOf[*array.StringBuilder](r, "currency")
	r.ready()
	return b
}

// Add appends the end-of-day balance d of accountID of userID; currency is
// the account's ("" = EUR: the history names none). A record that cannot be
// converted is returned as a Reject keyed "accountId/date" (ok=false) and
// nothing is appended. source_job_id stays "": the call names no job.
func (b *BalancesBuilder) Add(userID, accountID string, d DailyBalance, currency string) (rej extract.Reject, ok bool) {
	day, ok := parseDay(d.Date)
	if !ok && accountID != "" {
		return b.fail(accountID, d, badDay("date", d.Date)), false
	}
	return b.add(userID, accountID, "day", day, d, currency)
}

// add appends a balance of granularity on day (d.Date names it in rejects).
func (b *BalancesBuilder) add(userID, accountID, granularity string, day int32, d DailyBalance, currency string) (rej extract.Reject, ok bool) {
	if accountID == "" {
		return b.fail(accountID, d, "accountId missing"), false
	}
	balance, err := parseMoney(d.Balance)
	if err != nil {
		return b.fail(accountID, d, "balance "+err.Error()), false
	}

	b.appendCommon(userID, "")
	appendString(b.accountID, accountID)
	appendString(b.granularity, granularity)
	b.balanceDate.Append(arrow.Date32(day))
	b.balance.Append(decimal128.FromI64(balance))
	appendString(b.currency, orDefault(currency, defaultCurrency))
	return extract.Reject{}, true
}

func (b *BalancesBuilder) fail(accountID string, d DailyBalance, reason string) extract.Reject {
	// The table has no raw column and the caller passes none: the reject
	// carries the balance re-encoded, which holds nothing personal; a
	// balance that is no number is encoded as a string.
	raw, err := json.Marshal(d)
	if err != nil {
		raw, _ = json.Marshal(map[string]string{"date": d.Date, "balance": string(d.Balance)})
	}
	return b.reject(accountID+"/"+d.Date, reason, raw, nil)
}

// ContractsBuilder converts contracts into rows of transform.Contracts.
type ContractsBuilder struct {
	rowBuilder
	cats categories

	contractID, category, providerCategory, amountConsistency, interval *array.StringBuilder
	amount                                                              *array.Decimal128Builder
	duration                                                            *array.Int32Builder
	isActive                                                            *array.BooleanBuilder
	mref, partnerName, raw                                              *array.StringBuilder
	nextDate, nextFrom, nextTo                                          *array.Date32Builder
	transactionIDs                                                      *array.ListBuilder
	transactionIDValues                                                 *array.StringBuilder
}

// NewContractsBuilder starts an empty contracts record whose rows carry lin.
func NewContractsBuilder(mem memory.Allocator, lin transform.Lineage) *ContractsBuilder {
	b := &ContractsBuilder{rowBuilder: newRowBuilder(mem, transform.Contracts, lin), cats: newCategories()}
	r := &b.rowBuilder
	b.contractID = columnOf[*array.StringBuilder](r, "contract_id")
	b.category = columnOf[*array.StringBuilder](r, "category")
	b.providerCategory = columnOf[*array.StringBuilder](r, "provider_category")
	b.amount = columnOf[*array.Decimal128Builder](r, "amount")
	b.amountConsistency = columnOf[*array.StringBuilder](r, "amount_consistency")
	b.interval = columnOf[*array.StringBuilder](r, "interval")
	b.duration = columnOf[*array.Int32Builder](r, "duration")
	b.isActive = columnOf[*array.BooleanBuilder](r, "is_active")
	b.mref = columnOf[*array.StringBuilder](r, "mref")
	b.nextDate = columnOf[*array.Date32Builder](r, "next_booking_date")
	b.nextFrom = columnOf[*array.Date32Builder](r, "next_booking_from")
	b.nextTo = columnOf[*array.Date32Builder](r, "next_booking_to")
	b.partnerName = columnOf[*array.StringBuilder](r, "partner_name")
	b.transactionIDs = columnOf[*array.ListBuilder](r, "transaction_ids")
	b.transactionIDValues = b.transactionIDs.ValueBuilder().(*array.StringBuilder)
	b.raw = columnOf[*array.StringBuilder](r, "raw")
	r.ready()
	return b
}

// Add appends one contract of userID. raw is the contract's JSON as
// received, stored whole. A record that cannot be converted is returned as
// a Reject (ok=false) and nothing is appended. source_job_id stays "": the
// call names no job.
//
// Mapping: duration is NULL when 0 (unknown); the next booking date and the
// two ends of nextBookingRange are NULL when absent; partner_name is
// contractPartner.name; transaction_ids skips empty ids; provider_category
// is the raw category and category its common category.
func (b *ContractsBuilder) Add(userID string, c Contract, raw []byte) (rej extract.Reject, ok bool) {
	fail := func(reason string) (extract.Reject, bool) {
		return b.reject(c.ContractID, reason, raw, nil), false
	}
	if c.ContractID == "" {
		return fail("contractId missing")
	}
	amount, err := parseMoney(c.Amount)
	if err != nil {
		return fail("amount " + err.Error())
	}
	if c.Duration < 0 || c.Duration > math.MaxInt32 {
		return fail(fmt.Sprintf("duration %d: not a number of days", c.Duration))
	}
	next, hasNext, ok := parseOptionalDay(c.NextBookingDate)
	if !ok {
		return fail(badDay("nextBookingDate", c.NextBookingDate))
	}
	var fromText, toText string
	switch len(c.NextBookingRange) {
	case 0:
	case 2:
		fromText, toText = c.NextBookingRange[0], c.NextBookingRange[1]
	default:
		return fail(fmt.Sprintf("nextBookingRange has %d dates, want 2", len(c.NextBookingRange)))
	}
	from, hasFrom, ok := parseOptionalDay(fromText)
	if !ok {
		return fail(badDay("nextBookingRange[0]", fromText))
	}
	to, hasTo, ok := parseOptionalDay(toText)
	if !ok {
		return fail(badDay("nextBookingRange[1]", toText))
	}

	b.appendCommon(userID, "")
	appendString(b.contractID, c.ContractID)
	appendString(b.category, b.cats.forContract(c.Category))
	appendString(b.providerCategory, c.Category)
	b.amount.Append(decimal128.FromI64(amount))
	appendString(b.amountConsistency, c.AmountConsistency)
	appendString(b.interval, c.Interval)
	if c.Duration == 0 {
		b.duration.AppendNull()
	} else {
		b.duration.Append(int32(c.Duration))
	}
	b.isActive.Append(c.IsActive)
	appendString(b.mref, c.MandateReference)
	appendOptionalDay(b.nextDate, next, hasNext)
	appendOptionalDay(b.nextFrom, from, hasFrom)
	appendOptionalDay(b.nextTo, to, hasTo)
	partner := ""
	if c.ContractPartner != nil {
		partner = c.ContractPartner.Name
	}
	appendString(b.partnerName, partner)
	b.transactionIDs.Append(true)
	for _, t := range c.Transactions {
		if t.TransactionID != "" {
			appendString(b.transactionIDValues, t.TransactionID)
		}
	}
	b.raw.BinaryBuilder.Append(raw)
	return extract.Reject{}, true
}

// appendString appends s through the embedded BinaryBuilder: the same copy
// StringBuilder.Append makes.
func appendString(b *array.StringBuilder, s string) { b.BinaryBuilder.AppendString(s) }

// orDefault returns s, or def when s is empty.
func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Money: Decimal(18,4), the type of every amount column.
const (
	maxMoneyDigits = 18
	maxUnscaled    = 999_999_999_999_999_999 // 10^18 - 1: the largest Decimal(18,4) as an integer
)

// parseMoney reads a JSON number as an exact Decimal(18,4) and returns the
// unscaled value (the number times 10^4). It reads the decimal text itself,
// never through float64, accepts the exponent form a float serializer may
// print (1e-05, 2.5E+3) and trailing zeros beyond 4 decimals (1.50000 is
// 1.5 exactly), and refuses what it cannot store exactly instead of
// rounding. The error reads after the field name: `"abc": not a decimal`.
func parseMoney(num json.Number) (int64, error) {
	s := string(num)
	if s == "" {
		return 0, errors.New("missing")
	}
	notDecimal := func() (int64, error) { return 0, fmt.Errorf("%q: not a decimal", s) }
	i, neg := 0, false
	if s[0] == '-' {
		i, neg = 1, true
	}
	intStart := i
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	intEnd := i
	// JSON's grammar: at least one integer digit, no leading zero.
	if intEnd == intStart || (s[intStart] == '0' && intEnd-intStart > 1) {
		return notDecimal()
	}
	fracStart, fracEnd := i, i
	if i < len(s) && s[i] == '.' {
		i++
		fracStart = i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		fracEnd = i
		if fracEnd == fracStart {
			return notDecimal()
		}
	}
	exp := 0
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		expNeg := false
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			expNeg = s[i] == '-'
			i++
		}
		expStart := i
		for i < len(s) && isDigit(s[i]) {
			if exp < 1_000_000 { // beyond that only zero fits, the same either way
				exp = exp*10 + int(s[i]-'0')
			}
			i++
		}
		if i == expStart {
			return notDecimal()
		}
		if expNeg {
			exp = -exp
		}
	}
	if i != len(s) {
		return notDecimal()
	}

	// The digits, integer part then fraction, times 10^shift are the
	// unscaled value.
	intLen, fracLen := intEnd-intStart, fracEnd-fracStart
	digit := func(k int) byte {
		if k < intLen {
			return s[intStart+k]
		}
		return s[fracStart+k-intLen]
	}
	n := intLen + fracLen
	shift := exp - fracLen + transform.MoneyScale
	if shift < 0 {
		// The last -shift digits are below the fourth decimal: only zeros
		// may be cut.
		keep := max(n+shift, 0)
		for k := keep; k < n; k++ {
			if digit(k) != '0' {
				return 0, fmt.Errorf("%q: more than %d decimals", s, transform.MoneyScale)
			}
		}
		n, shift = keep, 0
	}
	outOfRange := func() (int64, error) { return 0, fmt.Errorf("%q: out of the Decimal(18,4) range", s) }
	var v uint64
	significant := 0
	for k := range n {
		d := digit(k)
		if significant == 0 && d == '0' {
			continue
		}
		if significant++; significant > maxMoneyDigits {
			return outOfRange()
		}
		v = v*10 + uint64(d-'0')
	}
	for ; v != 0 && shift > 0; shift-- {
		if v *= 10; v > maxUnscaled { // v ≤ maxUnscaled before: no overflow
			return outOfRange()
		}
	}
	if neg {
		return -int64(v), nil
	}
	return int64(v), nil
}

// parseOptionalMoney is parseMoney for a nullable column: "" is NULL.
func parseOptionalMoney(n json.Number) (v int64, ok bool, err error) {
	if n == "" {
		return 0, false, nil
	}
	v, err = parseMoney(n)
	return v, err == nil, err
}

func appendOptionalMoney(b *array.Decimal128Builder, v int64, ok bool) {
	if ok {
		b.Append(decimal128.FromI64(v))
	} else {
		b.AppendNull()
	}
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// Days: the warehouse's Date holds 1970-01-01 to 2149-06-06; a day outside
// would wrap silently there, so it is refused here. That also catches
// milliseconds sent where seconds belong.
const (
	secondsPerDay = 24 * 60 * 60
	maxDay        = 65535 // 2149-06-06
	dayRange      = "1970-01-01..2149-06-06"
)

// unixDay is the UTC day of Unix seconds: a number carries no offset
// (assumption 22).
func unixDay(sec int64) (int32, bool) {
	if sec < 0 {
		return 0, false
	}
	day := sec / secondsPerDay
	return int32(day), day <= maxDay
}

// day is the calendar day of a bookingDate or valueDate (assumption 22).
func (t Timestamp) day() (int32, bool) {
	if t.Text != "" {
		return parseDay(t.Text)
	}
	return unixDay(t.Unix)
}

func badTimestamp(field string, t Timestamp) string {
	if t.Text != "" {
		return fmt.Sprintf("%s %q: not a date or RFC 3339 timestamp of a day in %s", field, t.Text, dayRange)
	}
	return fmt.Sprintf("%s %d: not Unix seconds of a day in %s", field, t.Unix, dayRange)
}

// parseDay reads the day of a Date column's value, "YYYY-MM-DD" or an RFC
// 3339 timestamp, by the one rule of transform.ParseDay: the date written
// in it. It returns days since 1970-01-01.
func parseDay(s string) (int32, bool) {
	d, err := transform.ParseDay(s)
	if err != nil {
		return 0, false
	}
	return int32(d.Unix() / secondsPerDay), true
}

// parseOptionalDay is parseDay for a nullable column: "" is NULL.
func parseOptionalDay(s string) (day int32, present, ok bool) {
	if s == "" {
		return 0, false, true
	}
	day, ok = parseDay(s)
	return day, ok, ok
}

func badDay(field, s string) string {
	return fmt.Sprintf("%s %q: not a date YYYY-MM-DD (or RFC 3339) in %s", field, s, dayRange)
}

func appendOptionalDay(b *array.Date32Builder, day int32, ok bool) {
	if ok {
		b.Append(arrow.Date32(day))
	} else {
		b.AppendNull()
	}
}

// scrubRule names an object member to drop (sub == nil) or to descend into
// (sub: the rules for the members of its object value).
type scrubRule struct {
	key string
	sub []scrubRule
}

// scrubJSON appends the JSON object src to dst without the members rules
// drop. Everything else is copied byte for byte, except the whitespace
// around the members of the objects it walks, so the result is the payload
// as received minus those members. It scans only the structure it needs
// (src passed encoding/json already), fails on a src that is not one JSON
// object and never panics (FuzzScrubJSON).
func scrubJSON(dst, src []byte, rules []scrubRule) ([]byte, error) {
	i := skipSpace(src, 0)
	dst, i, err := scrubObject(dst, src, i, rules)
	if err != nil {
		return dst, err
	}
	if skipSpace(src, i) != len(src) {
		return dst, errors.New("not one JSON object: data after it")
	}
	return dst, nil
}

var errNotJSON = errors.New("not one JSON object")

func scrubObject(dst, src []byte, i int, rules []scrubRule) ([]byte, int, error) {
	if i >= len(src) || src[i] != '{' {
		return dst, i, errNotJSON
	}
	dst = append(dst, '{')
	i = skipSpace(src, i+1)
	if i < len(src) && src[i] == '}' {
		return append(dst, '}'), i + 1, nil
	}
	written := false
	for {
		keyStart := skipSpace(src, i)
		keyEnd, escaped, err := skipString(src, keyStart)
		if err != nil {
			return dst, i, err
		}
		i = skipSpace(src, keyEnd)
		if i >= len(src) || src[i] != ':' {
			return dst, i, errNotJSON
		}
		valStart := skipSpace(src, i+1)
		rule := matchRule(rules, src[keyStart:keyEnd], escaped)
		var valEnd int
		switch {
		case rule != nil && rule.sub == nil: // dropped
			if valEnd, err = skipValue(src, valStart); err != nil {
				return dst, i, err
			}
		case rule != nil && valStart < len(src) && src[valStart] == '{': // scrubbed
			dst = appendMember(dst, src[keyStart:keyEnd], written)
			if dst, valEnd, err = scrubObject(dst, src, valStart, rule.sub); err != nil {
				return dst, i, err
			}
			written = true
		default: // kept
			if valEnd, err = skipValue(src, valStart); err != nil {
				return dst, i, err
			}
			dst = appendMember(dst, src[keyStart:keyEnd], written)
			dst = append(dst, src[valStart:valEnd]...)
			written = true
		}
		i = skipSpace(src, valEnd)
		if i >= len(src) {
			return dst, i, errNotJSON
		}
		switch src[i] {
		case ',':
			i++
		case '}':
			return append(dst, '}'), i + 1, nil
		default:
			return dst, i, errNotJSON
		}
	}
}

// appendMember starts a member: the comma after a previous one, the key
// and the colon.
func appendMember(dst, key []byte, comma bool) []byte {
	if comma {
		dst = append(dst, ',')
	}
	return append(append(dst, key...), ':')
}

// matchRule finds the rule of a quoted key the way encoding/json matches a
// key to a field: unescaped and case-insensitively.
func matchRule(rules []scrubRule, quoted []byte, escaped bool) *scrubRule {
	key := quoted[1 : len(quoted)-1]
	if escaped {
		var s string
		if json.Unmarshal(quoted, &s) != nil {
			return nil
		}
		key = []byte(s)
	}
	if len(key) == 0 {
		return nil // no rule has an empty key
	}
	for i := range rules {
		rk := rules[i].key
		// An ASCII first byte folds only to its other case: most keys are
		// told apart here without the full Unicode comparison.
		if c := key[0]; c < utf8.RuneSelf && c|0x20 != rk[0]|0x20 {
			continue
		}
		if bytes.EqualFold(key, []byte(rk)) {
			return &rules[i]
		}
	}
	return nil
}

func skipSpace(src []byte, i int) int {
	for i < len(src) && (src[i] == ' ' || src[i] == '\t' || src[i] == '\n' || src[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the end of the string starting at i and whether it
// holds an escape.
func skipString(src []byte, i int) (end int, escaped bool, err error) {
	if i >= len(src) || src[i] != '"' {
		return i, false, errNotJSON
	}
	for j := i + 1; j < len(src); j++ {
		switch src[j] {
		case '\\':
			escaped = true
			j++
		case '"':
			return j + 1, escaped, nil
		}
	}
	return len(src), false, errNotJSON
}

// skipValue returns the end of the value starting at i. Containers are
// skipped by counting brackets outside strings; scalars run to the next
// delimiter.
func skipValue(src []byte, i int) (int, error) {
	if i >= len(src) {
		return i, errNotJSON
	}
	switch src[i] {
	case '"':
		end, _, err := skipString(src, i)
		return end, err
	case '{', '[':
		depth := 0
		for j := i; j < len(src); j++ {
			switch src[j] {
			case '"':
				end, _, err := skipString(src, j)
				if err != nil {
					return end, err
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1, nil
				}
			}
		}
		return len(src), errNotJSON
	case ',', '}', ']', ':':
		return i, errNotJSON
	}
	j := i
	for ; j < len(src); j++ {
		switch src[j] {
		case ',', '}', ']', ' ', '\t', '\r', '\n':
			return j, nil
		}
	}
	return j, nil
}

// The AddJSON methods are the one decoder of each finoOS record type: a
// record as received becomes a row or a reject, never an error that stops
// the page (FuzzRecords feeds them arbitrary bytes).

// AddJSON decodes one categorization item and adds it (see Add).
func (b *TransactionsBuilder) AddJSON(userID, correlationID string, raw []byte) (extract.Reject, bool) {
	var c Categorization
	scrubbed, ok := decodeCategorization(raw, &c, b.scratch[:0])
	b.scratch = scrubbed
	if !ok {
		if err := json.Unmarshal(raw, &c); err != nil {
			return b.reject(extract.RejectKey(raw, "transactionId"), "not a categorization: "+err.Error(), raw, b.scrub), false
		}
		return b.Add(userID, correlationID, c, raw)
	}
	return b.add(userID, correlationID, c, raw, scrubbed)
}

// TooLarge is the reject of a categorization item too large to read
// whole (extract.Walk): its first bytes, scrubbed like any reject.
func (b *TransactionsBuilder) TooLarge(t extract.TooLarge) extract.Reject {
	return b.reject(extract.RejectKey(t.Raw, "transactionId"), t.Reason, t.Raw, b.scrub)
}

// elements is the per-item callback of a categorization page: each item
// becomes a row or goes to reject; flush runs after every row.
func (b *TransactionsBuilder) elements(userID, correlationID string, reject func(extract.Reject) error, flush func() error) func(json.RawMessage) error {
	return func(raw json.RawMessage) error {
		if rej, ok := b.AddJSON(userID, correlationID, raw); !ok {
			return reject(rej)
		}
		return flush()
	}
}

// DecodeCategorizations adds the items of one categorization page read
// from r, as fino.transactions does (the benchmark decodes pages with it).
func DecodeCategorizations(r io.Reader, b *TransactionsBuilder, userID, correlationID string, reject func(extract.Reject) error) error {
	_, err := extract.Walk(r, []string{"categorizations"}, extract.DefaultLimits(), b.elements(userID, correlationID, reject, func() error { return nil }),
		func(t extract.TooLarge) error { return reject(b.TooLarge(t)) })
	return err
}

// AddJSON decodes one account of account detection and adds it (see Add).
func (b *AccountsBuilder) AddJSON(userID string, raw []byte, credit bool) (extract.Reject, bool) {
	var a DetectedAccount
	if err := json.Unmarshal(raw, &a); err != nil {
		return b.reject(extract.RejectKey(raw, "accountId"), "not an account: "+err.Error(), raw, b.scrub), false
	}
	return b.Add(userID, a, credit, raw)
}

// AddJSON decodes one daily balance of accountID and adds it (see Add).
func (b *BalancesBuilder) AddJSON(userID, accountID string, raw []byte, currency string) (extract.Reject, bool) {
	var d DailyBalance
	if err := json.Unmarshal(raw, &d); err != nil {
		return b.reject(accountID+"/"+extract.RejectKey(raw, "date"), "not a daily balance: "+err.Error(), raw, nil), false
	}
	return b.Add(userID, accountID, d, currency)
}

// AddJSON decodes one contract and adds it (see Add).
func (b *ContractsBuilder) AddJSON(userID string, raw []byte) (extract.Reject, bool) {
	var c Contract
	if err := json.Unmarshal(raw, &c); err != nil {
		return b.reject(extract.RejectKey(raw, "contractId"), "not a contract: "+err.Error(), raw, nil), false
	}
	return b.Add(userID, c, raw)
}
