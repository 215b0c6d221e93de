package sandbox

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	mrand "math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/finsync/finsync/extract/sandboxkit"
)

// The sandbox's synthetic world: processes that move through the documented
// status sequence, and for those that complete, a ledger of two accounts
// from which transactions and insights are served.

// The demo SSNs of the docs: one reaches completed, the other errs.
const (
	GoodSSN = "199503096316"
	BadSSN  = "197710114682"
	// sandboxCompanyID is the (fictitious) company id of the business process.
	sandboxCompanyID = "5569876543"
)

// Names of the sandbox's customers. None occurs inside a merchant text, so
// a test can look for them anywhere in the warehouse.
var (
	sandboxFirstNames = []string{"Astrid", "Gunnar", "Ingrid", "Sixten", "Märta", "Folke"}
	sandboxLastNames  = []string{"Lindqvist", "Bergström", "Sundqvist", "Hedenius", "Åkerlund", "Wahlgren"}
)

// step is one status of a path: process level, or bank level
// (customerBankConsent[].status, between consentLinkOpened and the consent
// answer).
type step struct {
	bank bool
	code string
}

var (
	bankSteps = []step{{true, bankAddedNotCompletedAuth}, {true, bankAddedCompletedAuth},
		{true, bankFetchingTransactions}, {true, bankFetchingTransactionsDone}}
	// goodPath is the documented sequence up to completed.
	goodPath = append(append([]step{{false, statusCreated}, {false, statusConsentLinkOpened}}, bankSteps...),
		step{false, statusCustomerApproved}, step{false, statusCategorisationStarted},
		step{false, statusCategorisationDone}, step{false, statusInsightsStarted}, step{false, statusCompleted})
	// authErrorPath fails at the bank's authentication.
	authErrorPath = []step{{false, statusCreated}, {false, statusConsentLinkOpened}, {true, bankAddedNotCompletedAuth}, {false, statusAuthError}}
	// deniedPath is denied after fetching started (the docs: "anytime after").
	deniedPath = append(append([]step{{false, statusCreated}, {false, statusConsentLinkOpened}}, bankSteps[:3]...),
		step{false, statusCustomerDenied})
)

// authErrorMessage is the sandbox's bank error (no personal data).
const authErrorMessage = "The customer denied sharing consent at the bank"

// Scenarios of the sandbox processes, by index in their partner bank (see
// Processes); an index past ScenarioBusiness is good again.
const (
	ScenarioGood      = iota // GoodSSN, completed long ago
	ScenarioAuthError        // BadSSN, stops at authError
	ScenarioDenied           // BadSSN, customerDeniedConsent
	ScenarioSlow             // GoodSSN, created at the sandbox's start: one status per Step
	ScenarioBusiness         // a company (companyId, psuType business), completed
)

// sbAccount is one account of a process.
type sbAccount struct {
	number, name, typ, bank string
	start                   int64 // opening balance, öre
}

// sbTxn is one transaction.
type sbTxn struct {
	id       string
	account  int
	day      time.Time // booking day
	amount   int64     // öre, negative = out
	text     string
	category string
}

// hashOf is a stable 64-bit hash of the parts.
func hashOf(parts ...string) uint64 {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return binary.BigEndian.Uint64(h.Sum(nil))
}

// objectID is a 24-hex id like Fimento's, from the seed and a name.
func objectID(seed int64, name string) string {
	sum := sha256.Sum256([]byte(strconv.FormatInt(seed, 10) + "/" + name))
	return hex.EncodeToString(sum[:12])
}

// merchants by category: amounts in öre (min, max) and how often per day.
var merchants = []struct {
	category string
	texts    []string
	min, max int64
	p        float64
}{
	{"groceries", []string{"ICA MAXI", "COOP KONSUM", "HEMKÖP", "LIDL"}, 8_900, 120_000, 0.45},
	{"restaurants", []string{"MAX HAMBURGARE", "ESPRESSO HOUSE", "PIZZERIA NAPOLI"}, 4_500, 65_000, 0.15},
	{"transport", []string{"SL RESKASSA", "SJ AB", "CIRCLE K"}, 3_900, 95_000, 0.12},
	{"shopping", []string{"H&M", "CLAS OHLSON", "KJELL & CO"}, 9_900, 150_000, 0.06},
	{"entertainment", []string{"FILMSTADEN", "SYSTEMBOLAGET"}, 12_000, 60_000, 0.05},
	{"health", []string{"APOTEK HJÄRTAT"}, 5_000, 40_000, 0.03},
}

// ledgerOf generates a completed process's accounts and transactions, oldest
// first: months of data up to today. Like a real bank's, its free text names
// the customer: the accounts carry the customer's name, and a monthly Swish
// transfer's text holds the name and the personal (or company) number, so a
// test of the redaction has something to find (fimento package doc, 20).
//
// With spell (Options.BankSpellings) the Swish text of each month spells
// the name and number another way (bankSpellings), recorded in p.spellings.
func ledgerOf(seed int64, p *sbProcess, months int, today time.Time, spell bool) ([]sbAccount, []sbTxn) {
	r := mrand.New(mrand.NewPCG(uint64(seed), hashOf("ledger", p.id)))
	banks := []string{"Swedbank", "Nordea", "Handelsbanken", "SEB"}
	bank := banks[r.IntN(len(banks))]
	full := strings.TrimSpace(p.first + " " + p.last)
	savings := "Sparkonto"
	if p.first != "" {
		savings = p.first + "s sparkonto" // the genitive: "Astrids sparkonto"
	}
	accounts := []sbAccount{
		{number: "8327-9" + strconv.Itoa(10_000_000+r.IntN(89_999_999)), name: strings.TrimSpace("Lönekonto " + full), typ: "Transaction account", bank: bank, start: 400_000 + r.Int64N(600_000)},
		{number: "8327-9" + strconv.Itoa(10_000_000+r.IntN(89_999_999)), name: savings, typ: "Savings account", bank: bank, start: 2_000_000 + r.Int64N(3_000_000)},
	}
	number := p.ssn
	if number == "" {
		number = p.companyID
	}
	swish := strings.Join(strings.Fields("Swish från "+full+" "+number), " ")
	var spelled []string
	if spell {
		spelled, p.spellings = bankSpellings(p.first, p.last, number)
	}
	salary := 2_800_000 + r.Int64N(1_500_000)
	rent := 700_000 + r.Int64N(600_000)
	var txns []sbTxn
	add := func(acc int, day time.Time, amount int64, text, category string) {
		txns = append(txns, sbTxn{id: objectID(seed, p.id+"/tx/"+strconv.Itoa(len(txns))), account: acc, day: day,
			amount: amount, text: text, category: category})
	}
	first := today.AddDate(0, -months, 1)
	for day := first; !day.After(today); day = day.AddDate(0, 0, 1) {
		switch day.Day() {
		case 25:
			add(0, day, salary, "LÖN ACME AB", "salary")
		case 27:
			add(0, day, -rent, "HYRA HSB BRF TALLEN", "housing")
		case 28:
			add(0, day, -200_000, "ÖVERFÖRING SPARKONTO", "savings")
			add(1, day, 200_000, "ÖVERFÖRING FRÅN LÖNEKONTO", "transfers")
		case 5:
			add(0, day, -10_900, "SPOTIFY AB", "subscriptions")
		case 12:
			text := swish
			if len(spelled) > 0 {
				text = spelled[int(day.Month())%len(spelled)]
			}
			add(0, day, 50_000, text, "transfers")
		}
		for _, m := range merchants {
			if r.Float64() < m.p {
				add(0, day, -(m.min + r.Int64N(m.max-m.min)), m.texts[r.IntN(len(m.texts))], m.category)
			}
		}
	}
	return accounts, txns
}

// bankSpellings are Swish texts naming the customer as banks print it, and
// the forms of the name and number they use beyond the given ones.
func bankSpellings(first, last, number string) (texts, forms []string) {
	translit := strings.NewReplacer("å", "aa", "ä", "ae", "ö", "oe", "Å", "Aa", "Ä", "Ae", "Ö", "Oe")
	ascii := strings.NewReplacer("å", "a", "ä", "a", "ö", "o", "Å", "A", "Ä", "A", "Ö", "O")
	up := func(s string) string { return strings.ToUpper(ascii.Replace(s)) }
	initial := ""
	if first != "" {
		initial = string([]rune(first)[0]) + ". "
	}
	n := number
	var spaced, dashed, dotted string
	switch len(n) {
	case 12: // YYYYMMDDNNNN
		spaced, dashed, dotted = n[:8]+" "+n[8:], n[:4]+"-"+n[4:6]+"-"+n[6:8]+"-"+n[8:], n[2:8]+"."+n[8:]
	case 10: // an organisation number
		spaced, dashed, dotted = n[:3]+" "+n[3:6]+" "+n[6:], n[:3]+"-"+n[3:6]+"-"+n[6:], n[:6]+"."+n[6:]
	default:
		spaced, dashed, dotted = n, n, n
	}
	texts = []string{
		"SWISH " + up(last+" "+first) + " " + spaced,
		"Swish från " + translit.Replace(first+" "+last) + " " + dashed,
		"INSATTNING " + up(initial+last) + " " + dotted,
		"Swish " + strings.ToUpper(translit.Replace(last+", "+first)) + " " + spaced,
	}
	for _, f := range []string{up(first), up(last), translit.Replace(first), translit.Replace(last), spaced, dashed, dotted} {
		if f != "" && !strings.EqualFold(f, first) && !strings.EqualFold(f, last) && f != number {
			forms = append(forms, f)
		}
	}
	for i := range texts {
		texts[i] = strings.Join(strings.Fields(texts[i]), " ")
	}
	return texts, forms
}

// fixed2 prints öre as a decimal with two places.
func fixed2(ore int64) string {
	sign := ""
	if ore < 0 {
		sign, ore = "-", -ore
	}
	return sign + strconv.FormatInt(ore/100, 10) + "." + twoDigits(ore%100)
}

func twoDigits(n int64) string {
	if n < 10 {
		return "0" + strconv.FormatInt(n, 10)
	}
	return strconv.FormatInt(n, 10)
}

// Ledger is the truth about one completed process, computed by the same
// generator the endpoints serve from, for tests to compare with what
// landed. Amounts are decimals with two places ("-1234.50").
type Ledger struct {
	Transactions int
	AmountSum    string
	Days         map[string]string  // booking day → sum of that day's amounts
	Balances     map[string]string  // day → end-of-day balance over all accounts (the graph's)
	Accounts     map[Account]string // final balance of each account
	Categories   map[string]string  // Fimento category → sum
	// MalformedTransactions are the ids the Malformed fault always corrupts.
	MalformedTransactions []string
}

// Account names an account as accountsInfo does, without an id: its bank
// and its number.
type Account struct{ Bank, Number string }

// ledger computes a Ledger from a process's generated data.
func (s *Server) ledger(p *sbProcess) Ledger {
	l := Ledger{Days: map[string]string{}, Balances: map[string]string{}, Accounts: map[Account]string{}, Categories: map[string]string{}}
	var sum int64
	days, cats := map[string]int64{}, map[string]int64{}
	for _, t := range p.txns {
		l.Transactions++
		sum += t.amount
		days[t.day.Format(time.DateOnly)] += t.amount
		cats[t.category] += t.amount
		if s.faults.Malformed("tx/" + t.id) {
			l.MalformedTransactions = append(l.MalformedTransactions, t.id)
		}
	}
	l.AmountSum = fixed2(sum)
	for d, v := range days {
		l.Days[d] = fixed2(v)
	}
	for c, v := range cats {
		l.Categories[c] = fixed2(v)
	}
	for _, g := range graphOf(p) {
		l.Balances[g.day.Format(time.DateOnly)] = fixed2(g.balance)
	}
	final := make([]int64, len(p.accounts))
	for i, a := range p.accounts {
		final[i] = a.start
	}
	for _, t := range p.txns {
		final[t.account] += t.amount
	}
	for i, a := range p.accounts {
		l.Accounts[Account{a.bank, a.number}] = fixed2(final[i])
	}
	return l
}

// graphDay is one day of the transaction graph in öre.
type graphDay struct {
	day           time.Time
	balance       int64 // end of day, all accounts
	neg, pos      int64
	negTx, posTxs []sbTxn
}

// graphOf is the transaction graph: every day from the first transaction's
// to today, with the user-level end-of-day balance (fimento package doc, 13).
func graphOf(p *sbProcess) []graphDay {
	if len(p.txns) == 0 {
		return nil
	}
	var balance int64
	for _, a := range p.accounts {
		balance += a.start
	}
	var out []graphDay
	i := 0
	for day := p.txns[0].day; !day.After(p.today); day = day.AddDate(0, 0, 1) {
		g := graphDay{day: day}
		for ; i < len(p.txns) && p.txns[i].day.Equal(day); i++ {
			t := p.txns[i]
			balance += t.amount
			if t.amount < 0 {
				g.neg += t.amount
				g.negTx = append(g.negTx, t)
			} else {
				g.pos += t.amount
				g.posTxs = append(g.posTxs, t)
			}
		}
		g.balance = balance
		out = append(out, g)
	}
	return out
}

// insightsDoc renders the insights object of a completed process.
func insightsDoc(p *sbProcess) []byte {
	graphTx := func(ts []sbTxn) []graphTxn {
		out := make([]graphTxn, len(ts))
		for i, t := range ts {
			out[i] = graphTxn{Description: t.text, Amount: json.Number(fixed2(t.amount)), Category: t.category}
		}
		return out
	}
	graph := graphOf(p)
	days := make([]graphDayDoc, len(graph))
	for i, g := range graph {
		days[i] = graphDayDoc{Date: g.day.Format(time.DateOnly), Info: dayInfo{Balance: json.Number(fixed2(g.balance)),
			NegativeSum: json.Number(fixed2(g.neg)), PositiveSum: json.Number(fixed2(g.pos)),
			NegativeTransactions: graphTx(g.negTx), PositiveTransactions: graphTx(g.posTxs)}}
	}
	final := make([]int64, len(p.accounts))
	for i, a := range p.accounts {
		final[i] = a.start
	}
	cats := map[string]struct{ sum, count int64 }{}
	var income, expenses int64
	for _, t := range p.txns {
		final[t.account] += t.amount
		c := cats[t.category]
		c.sum += t.amount
		c.count++
		cats[t.category] = c
		switch {
		case t.category == "transfers" || t.category == "savings":
		case t.amount > 0:
			income += t.amount
		default:
			expenses += t.amount
		}
	}
	var total int64
	accounts := make([]accountInfo, len(p.accounts))
	for i, a := range p.accounts {
		total += final[i]
		accounts[i] = accountInfo{AccountNumber: a.number, Name: a.name, Balance: json.Number(fixed2(final[i])), Type: a.typ, Bank: a.bank}
	}
	names := make([]string, 0, len(cats))
	for c := range cats {
		names = append(names, c)
	}
	sort.Strings(names)
	categorisation := map[string]any{}
	for _, c := range names {
		categorisation[c] = map[string]any{"sum": json.Number(fixed2(cats[c].sum)), "count": cats[c].count}
	}
	months := int64(len(graph)/30) + 1
	in := insightsBody{
		TransactionGraph:     days,
		AccountsInfo:         accounts,
		TotalBalance:         sandboxkit.MustJSON(map[string]any{"amount": json.Number(fixed2(total)), "currency": currencyOf(p.market)}),
		FetchedAtInterval:    &interval{Min: p.txns[0].day, Max: p.today.Add(23 * time.Hour)},
		Categorisation:       sandboxkit.MustJSON(categorisation),
		SocialSecurityNumber: p.ssn,
		CompanyID:            p.companyID,
		FirstName:            p.first,
		LastName:             p.last,
		ProcessID:            p.id,
		ComputationAutomation: sandboxkit.MustJSON(map[string]any{
			"averageMonthlyIncome":   json.Number(fixed2(income / months)),
			"averageMonthlyExpenses": json.Number(fixed2(expenses / months)),
			"kalpSurplus":            json.Number(fixed2((income + expenses) / months)),
			"approved":               true,
		}),
	}
	return sandboxkit.MustJSON(in)
}
