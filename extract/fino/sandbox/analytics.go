package sandbox

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/finsync/finsync/extract/sandboxkit"
)

// The sandbox's analytics endpoints. Every module is computed from the
// ledger the same sandbox serves through categorization and account
// history: the salary module's month is the sum of that month's salary
// transactions, liquidity's end-of-month balance is the account history's
// balance on the month's last day, and so on (the fino package's assumptions 38–46).

// Kinds only the analytics ledgers book.
var (
	kChildBenefit    = &kind{tags: []string{"child_benefit", "income", "earning"}, de: "Kindergeld", en: "Child benefit", text: "GUTSCHRIFT", code: 166}
	kPension         = &kind{tags: []string{"pension", "income", "earning"}, de: "Rente", en: "Pension", text: "RENTE", code: 153}
	kParental        = &kind{tags: []string{"parental_allowance", "income", "earning"}, de: "Elterngeld", en: "Parental allowance", text: "GUTSCHRIFT", code: 166}
	kRentalIncome    = &kind{tags: []string{"rental_income", "income", "earning"}, de: "Mieteinnahmen", en: "Rental income", text: "GUTSCHRIFT", code: 166}
	kAlimony         = &kind{tags: []string{"alimony", "income", "earning"}, de: "Unterhalt", en: "Alimony", text: "GUTSCHRIFT", code: 166}
	kSelfEmployed    = &kind{tags: []string{"self_employment", "income", "earning"}, de: "Selbststaendigkeit", en: "Self-employment", text: "GUTSCHRIFT", code: 166}
	kLoanPayout      = &kind{tags: []string{"loan_disbursement", "income", "earning"}, de: "Kreditauszahlung", en: "Loan disbursement", text: "GUTSCHRIFT", code: 166}
	kRefund          = &kind{tags: []string{"refund", "income", "earning"}, de: "Erstattung", en: "Refund", text: "GUTSCHRIFT", code: 166}
	kLoanInstalment  = &kind{tags: []string{"loan_instalment", "credit", "spending"}, de: "Kreditrate", en: "Loan instalment", text: "LASTSCHRIFT", code: 105}
	kGambling        = &kind{tags: []string{"gambling", "leisure", "spending"}, de: "Gluecksspiel", en: "Gambling", text: "KARTENZAHLUNG", code: 106, mcc: "7995"}
	kBackDebit       = &kind{tags: []string{"return_debit", "fees"}, de: "Ruecklastschrift", en: "Returned direct debit", text: "RUECKLASTSCHRIFT", code: 109}
	kGarnishment     = &kind{tags: []string{"garnishment", "spending"}, de: "Pfaendung", en: "Garnishment", text: "UEBERWEISUNG", code: 116}
	kCollection      = &kind{tags: []string{"debt_collection", "spending"}, de: "Inkasso", en: "Debt collection", text: "UEBERWEISUNG", code: 116}
	kRevenue         = &kind{tags: []string{"revenue", "earning"}, de: "Umsatz", en: "Revenue", text: "GUTSCHRIFT", code: 166}
	kSupplier        = &kind{tags: []string{"supplier_payment", "spending"}, de: "Lieferant", en: "Supplier", text: "UEBERWEISUNG", code: 116}
	kPayroll         = &kind{tags: []string{"salary_payment", "staff", "spending"}, de: "Lohnzahlung", en: "Payroll", text: "LOHN/GEHALT", code: 116, purposeCode: "SALA"}
	kSocialInsurance = &kind{tags: []string{"social_insurance", "staff", "spending"}, de: "Sozialversicherung", en: "Social insurance", text: "LASTSCHRIFT", code: 105}
	kCashDeposit     = &kind{tags: []string{"cash_deposit", "cash", "earning"}, de: "Bareinzahlung", en: "Cash deposit", text: "BAREINZAHLUNG", code: 82}
	kBizInsurance    = &kind{tags: []string{"insurance_business", "insurance", "spending"}, de: "Betriebsversicherung", en: "Business insurance", text: "LASTSCHRIFT", code: 105}
	kInvestment      = &kind{tags: []string{"securities_savings", "investment", "spending"}, de: "Wertpapiersparplan", en: "Securities savings plan", text: "DAUERAUFTRAG", code: 117}
)

// addLifeEvents gives a person the bookings of every person module. It
// draws from its own stream, so the rest of the profile stays as it was.
func (d *dataset) addLifeEvents(p *profile, h uint64) {
	r := rand.New(rand.NewPCG(d.seed, h^0x11fe))
	last := d.months - 1
	add := func(k *kind, name string, amount int64, every, day int, variable bool) *spec {
		p.specs = append(p.specs, spec{kind: k, partner: PaymentPartner{Name: name, IBAN: iban("50010517", fmt.Sprintf("%010d", r.Int64N(1e10)))},
			amount: amount, every: every, phase: r.IntN(every), day: day, last: last, variable: variable, purpose: name + " %s"})
		return &p.specs[len(p.specs)-1]
	}
	add(kChildBenefit, "Familienkasse", 25500, 1, 10, false)
	add(kPension, "Deutsche Rentenversicherung", euros(r, 300, 900), 1, 1, false)
	add(kParental, "Elterngeldstelle", euros(r, 300, 1800), 1, 12, false).last = last / 2
	add(kRentalIncome, "Mieter Garage", euros(r, 60, 900), 1, 4, false)
	add(kAlimony, "Unterhaltszahlung", euros(r, 150, 400), 1, 5, false)
	add(kSelfEmployed, "Honorar Kunde", euros(r, 200, 1500), 3, 15, true)
	add(kLoanPayout, "Konsumkredit Bank", euros(r, 2000, 8000), 12, 8, false)
	add(kRefund, "Stadtwerke Erstattung", euros(r, 20, 200), 6, 18, false)
	add(kLoanInstalment, "Konsumkredit Bank", -euros(r, 100, 400), 1, 9, false)
	add(kGambling, "Online Casino", -euros(r, 10, 60), 1, 6, true)
	add(kGambling, "Sportwetten24", -euros(r, 10, 60), 1, 19, true)
	add(kBackDebit, "Ruecklastschrift", euros(r, 20, 80), 3, 21, false)
	add(kGarnishment, "Amtsgericht Pfaendung", -euros(r, 100, 300), 4, 22, false)
	add(kCollection, "Inkasso Nord GmbH", -euros(r, 50, 150), 6, 23, false)
}

// companyProfile is a company's year: two current accounts, customers and
// suppliers (some abroad), payroll, cash, a loan, insurance, a savings plan,
// internal bookings and the odd returned debit and garnishment.
func (d *dataset) companyProfile(tenant, userID string) *profile {
	h := hashString("company/" + tenant + "/" + userID)
	r := rand.New(rand.NewPCG(d.seed, h))
	p := &profile{hash: h, card: -1, owner: pick(r, lastNames) + " " + pick(r, []string{"GmbH", "KG", "AG"}), zone: d.zone}
	for _, i := range []int{0, 3} { // newAccount: 0 and 3 are current accounts
		a := newAccount(r, i, false)
		a.name, a.opening = "Geschaeftskonto", euros(r, 5000, 40000)
		p.accounts = append(p.accounts, a)
	}
	p.spend = []int{0}
	last := d.months - 1
	add := func(k *kind, acc int, partner PaymentPartner, amount int64, every, day int, variable bool) {
		p.specs = append(p.specs, spec{kind: k, account: acc, partner: partner, amount: amount, every: every,
			phase: r.IntN(every), day: day, last: last, variable: variable, purpose: partner.Name + " %s"})
	}
	domestic := func(name string) PaymentPartner {
		b := pick(r, banks)
		return PaymentPartner{Name: name, IBAN: iban(b.code, fmt.Sprintf("%010d", r.Int64N(1e10))), BIC: b.bic}
	}
	abroad := func(name, country string) PaymentPartner {
		return PaymentPartner{Name: name, IBAN: fmt.Sprintf("%s%02d%016d", country, 10+r.IntN(90), r.Int64N(1e16))}
	}
	for i, name := range []string{"Alpen Handel GmbH", "Nordsee Logistik AG", "Stadtbau Projekt KG"} {
		add(kRevenue, 0, domestic(name), euros(r, 3000, 12000), 1, 3+5*i, true)
	}
	add(kRevenue, 0, abroad("Wiener Technik GmbH", "AT"), euros(r, 2000, 6000), 1, 17, true)
	add(kSupplier, 0, domestic("Buerobedarf Schulz"), -euros(r, 200, 900), 1, 6, true)
	add(kSupplier, 0, domestic("Energie Versorgung Sued"), -euros(r, 400, 1200), 1, 12, true)
	add(kSupplier, 1, abroad("Composants Lyon SARL", "FR"), -euros(r, 1500, 5000), 1, 14, true)
	employees := 3 + r.IntN(5)
	var payroll int64
	for range employees {
		pay := euros(r, 2000, 4500)
		payroll += pay
		add(kPayroll, 0, domestic(pick(r, firstNames)+" "+pick(r, lastNames)), -pay, 1, 27, false)
	}
	add(kSocialInsurance, 0, domestic("AOK Beitragseinzug"), -(payroll / 5), 1, 28, false)
	add(kCashDeposit, 0, PaymentPartner{Name: "Bareinzahlung Filiale"}, euros(r, 500, 2000), 1, 11, true)
	add(kCash, 0, PaymentPartner{Name: "Geldautomat"}, -euros(r, 200, 800), 1, 16, true)
	add(kLoanInstalment, 0, domestic("Investitionsbank"), -euros(r, 800, 2500), 1, 2, false)
	add(kBizInsurance, 0, domestic("Gewerbe Versicherung AG"), -euros(r, 300, 900), 3, 7, false)
	add(kInvestment, 1, domestic("Depotbank Sparplan"), -euros(r, 200, 800), 1, 20, false)
	add(kTransfer, 0, PaymentPartner{Name: p.owner, IBAN: p.accounts[1].iban}, -euros(r, 2000, 5000), 1, 10, false)
	p.specs = append(p.specs, p.specs[len(p.specs)-1])
	internal := &p.specs[len(p.specs)-1]
	internal.account, internal.amount, internal.partner.IBAN = 1, -internal.amount, p.accounts[0].iban
	add(kBackDebit, 0, domestic("Ruecklastschrift"), euros(r, 50, 400), 3, 23, false)
	add(kGarnishment, 0, domestic("Finanzamt Pfaendung"), -euros(r, 300, 900), 6, 24, false)
	add(kFees, 0, PaymentPartner{Name: p.accounts[0].bank.name}, -euros(r, 15, 40), 1, 28, false)
	return p
}

// ledgerView is one user's generated data, in the shapes modules need.
type ledgerView struct {
	d        *dataset
	p        *profile
	txns     []txn
	balances [][]dayBalance
	months   []string // YYYY-MM, oldest first
	complete int      // how many of months are complete
}

func (d *dataset) view(p *profile) *ledgerView {
	v := &ledgerView{d: d, p: p, balances: d.balances(p)}
	d.walk(p, func(t []txn) { v.txns = append(v.txns, t...) })
	for m := range d.months {
		v.months = append(v.months, d.monthStart(m).Format("2006-01"))
		if _, ok := d.lastDay(m); ok {
			v.complete++
		}
	}
	return v
}

func (v *ledgerView) span(sinceUntil bool) *timespan {
	return &timespan{From: v.d.start.Format(time.DateOnly), To: v.d.today.Format(time.DateOnly), SinceUntil: sinceUntil}
}

// tally is what a set of transactions adds up to.
type tally struct {
	sum   int64
	count int
	ids   []string
}

func (t *tally) add(x *txn) {
	t.sum += x.amount
	t.count++
	t.ids = append(t.ids, x.id)
}

func (t tally) toSum() *sum {
	return &sum{Sum: amountJSON(t.sum), Count: json.Number(strconv.Itoa(t.count)), TransactionIDs: t.ids}
}

// monthly tallies the matching transactions per month (all months).
func (v *ledgerView) monthly(match func(*txn) bool) (map[string]*tally, tally) {
	out := map[string]*tally{}
	for _, m := range v.months {
		out[m] = &tally{}
	}
	var total tally
	for i := range v.txns {
		if t := &v.txns[i]; match(t) {
			out[t.day.Format("2006-01")].add(t)
			total.add(t)
		}
	}
	return out, total
}

// perCompleteMonth is the average of the matching sums over complete months.
func (v *ledgerView) perCompleteMonth(match func(*txn) bool) int64 {
	by, _ := v.monthly(match)
	return v.completeAverage(by)
}

func (v *ledgerView) completeAverage(by map[string]*tally) int64 {
	var sum int64
	for _, m := range v.months[:v.complete] {
		sum += by[m].sum
	}
	return roundDiv(sum, int64(max(1, v.complete)))
}

func (v *ledgerView) completeSums(by map[string]*tally) []int64 {
	out := make([]int64, v.complete)
	for i, m := range v.months[:v.complete] {
		out[i] = by[m].sum
	}
	return out
}

func ofKind(ks ...*kind) func(*txn) bool {
	return func(t *txn) bool { return slices.Contains(ks, t.kind) }
}

// The person modules' matchers: which ledger transactions each counts.
func (v *ledgerView) personMatchers() map[string]func(*txn) bool {
	notCard := func(t *txn) bool { return v.p.accounts[t.account].typ != accountKreditKarte }
	other := ofKind(kBroadcastFee, kStreaming, kMobile, kGym, kGroceries, kRestaurant, kOnlineShopping, kFuel, kDrugstore, kCash, kFees)
	return map[string]func(*txn) bool{
		"person-income-salary":             ofKind(kSalary),
		"person-income-pension":            ofKind(kPension),
		"person-income-child-benefit":      ofKind(kChildBenefit),
		"person-income-parental-allowance": ofKind(kParental),
		"person-income-rental":             ofKind(kRentalIncome),
		"person-income-investment":         ofKind(kInterest),
		"person-income-loan":               ofKind(kLoanPayout),
		"person-income-alimony":            ofKind(kAlimony),
		"person-income-self-employment":    ofKind(kSelfEmployed),
		"person-income-other":              ofKind(kRefund),
		"person-spending-rent":             ofKind(kRent),
		"person-spending-investment":       func(t *txn) bool { return t.kind == kSavings && t.amount < 0 },
		"person-spending-insurance":        ofKind(kInsuranceLegal, kInsuranceLiability, kInsuranceHousehold, kInsuranceCar),
		"person-spending-credit":           ofKind(kLoanInstalment),
		"person-spending-credit-card":      ofKind(kCardBilling),
		"person-spending-other":            func(t *txn) bool { return other(t) && notCard(t) },
		"person-risk-back-debit":           ofKind(kBackDebit),
		"person-risk-garnishment":          ofKind(kGarnishment),
		"person-risk-collection":           ofKind(kCollection),
		"person-risk-gambling":             ofKind(kGambling),
	}
}

// personModule computes one income, spending or risk module.
func (v *ledgerView) personModule(match func(*txn) bool) personModule {
	by, total := v.monthly(match)
	m := personModule{Available: total.count > 0}
	if !m.Available {
		return m
	}
	m.Average, m.Median = amountJSON(v.completeAverage(by)), amountJSON(median(v.completeSums(by)))
	for _, month := range v.months {
		t := by[month]
		m.MonthlyOverview.Items = append(m.MonthlyOverview.Items, monthlyAmount{Month: month, Amount: amountJSON(t.sum),
			Count: json.Number(strconv.Itoa(t.count)), TransactionIDs: t.ids})
	}
	return m
}

// overdraft: days whose end-of-day balance of a current account is below 0.
func (v *ledgerView) overdraft() overdraftModule {
	var m overdraftModule
	byMonth := map[string]*overdraftMonth{}
	for _, month := range v.months {
		byMonth[month] = &overdraftMonth{Month: month}
	}
	for i, daily := range v.balances {
		if v.p.accounts[i].typ != accountGiro {
			continue
		}
		for _, b := range daily {
			if b.balance < 0 {
				mo := byMonth[b.day.Format("2006-01")]
				mo.Items.Items = append(mo.Items.Items, dayAmount{Date: b.day.Format(time.DateOnly), Amount: amountJSON(b.balance)})
			}
		}
	}
	for _, month := range v.months {
		mo := byMonth[month]
		mo.Days = json.Number(strconv.Itoa(len(mo.Items.Items)))
		m.MonthlyOverview.Items = append(m.MonthlyOverview.Items, *mo)
	}
	return m
}

// householdBudget: complete-month averages of the income and spending
// modules, grouped as Household Budget lists them.
func (v *ledgerView) householdBudget() householdBudget {
	pm := v.personMatchers()
	any := func(names ...string) func(*txn) bool {
		return func(t *txn) bool {
			return slices.ContainsFunc(names, func(n string) bool { return pm[n](t) })
		}
	}
	income := map[string]func(*txn) bool{
		"salary": pm["person-income-salary"], "pension": pm["person-income-pension"], "childBenefit": pm["person-income-child-benefit"],
		"parentalAllowance": pm["person-income-parental-allowance"], "rental": pm["person-income-rental"], "alimony": pm["person-income-alimony"],
		"otherRecurring":    any("person-income-self-employment", "person-income-investment"),
		"otherNonRecurring": any("person-income-loan", "person-income-other"),
	}
	spending := map[string]func(*txn) bool{
		"rent": pm["person-spending-rent"], "credits": pm["person-spending-credit"], "insurances": pm["person-spending-insurance"],
		"investments": pm["person-spending-investment"], "creditCards": pm["person-spending-credit-card"],
		"otherRecurring":    func(t *txn) bool { return pm["person-spending-other"](t) && t.spec >= 0 },
		"otherNonRecurring": func(t *txn) bool { return pm["person-spending-other"](t) && t.spec < 0 },
	}
	h := householdBudget{ObservedTimespan: v.span(false), Income: map[string]json.Number{}, Spending: map[string]json.Number{}}
	var in, out []func(*txn) bool
	for k, f := range income {
		h.Income[k] = amountJSON(v.perCompleteMonth(f))
		in = append(in, f)
	}
	for k, f := range spending {
		h.Spending[k] = amountJSON(v.perCompleteMonth(f))
		out = append(out, f)
	}
	anyOf := func(fs []func(*txn) bool) func(*txn) bool {
		return func(t *txn) bool { return slices.ContainsFunc(fs, func(f func(*txn) bool) bool { return f(t) }) }
	}
	inTotal, outTotal := v.perCompleteMonth(anyOf(in)), v.perCompleteMonth(anyOf(out))
	h.Income["total"], h.Spending["total"], h.Balance = amountJSON(inTotal), amountJSON(outTotal), amountJSON(inTotal+outTotal)
	return h
}

// adultCheck derives indicators from the ledger's bookings.
func (v *ledgerView) adultCheck() adultCheck {
	type rule struct {
		name, strength string
		match          func(*txn) bool
	}
	rules := []rule{
		{"CAR_INSURANCE", "VERY_STRONG", ofKind(kInsuranceCar)},
		{"CONSUMER_CREDIT", "VERY_STRONG", ofKind(kLoanInstalment)},
		{"GAMBLING", "VERY_STRONG", ofKind(kGambling)},
		{"CREDIT_CARD_BILLING", "VERY_STRONG", ofKind(kCardBilling)},
		{"HIGH_RENT", "VERY_STRONG", func(t *txn) bool { return t.kind == kRent && t.amount <= -90000 }},
		{"MOBILE_PHONE_CONTRACT", "STRONG", ofKind(kMobile)},
		{"LIABILITY_INSURANCE", "STRONG", ofKind(kInsuranceLiability)},
		{"HOUSEHOLD_INSURANCE", "STRONG", ofKind(kInsuranceHousehold)},
		{"LEGAL_PROTECTION_INSURANCE", "STRONG", ofKind(kInsuranceLegal)},
		{"LOW_RENT", "MEDIUM", func(t *txn) bool { return t.kind == kRent && t.amount > -45000 }},
		{"STREAMING_SUBSCRIPTION", "MEDIUM", ofKind(kStreaming)},
	}
	a := adultCheck{Decision: "UNKNOWN", ObservedTimespan: v.span(true)}
	// STABLE_FULL_TIME_INCOME: salary of at least 1,680 € in 3 consecutive months.
	salary, _ := v.monthly(ofKind(kSalary))
	run, best := 0, 0
	var ids []string
	for _, m := range v.months {
		if salary[m].sum >= 168000 {
			run++
			ids = append(ids, salary[m].ids...)
		} else {
			run = 0
		}
		best = max(best, run)
	}
	if best >= 3 {
		a.Indicators.Items = append(a.Indicators.Items, indicator{Indicator: "STABLE_FULL_TIME_INCOME", Strength: "VERY_STRONG", TransactionIDs: ids})
	}
	for _, r := range rules {
		_, t := v.monthly(r.match)
		if t.count > 0 {
			a.Indicators.Items = append(a.Indicators.Items, indicator{Indicator: r.name, Strength: r.strength, TransactionIDs: t.ids})
		}
	}
	for _, ind := range a.Indicators.Items {
		if ind.Strength == "VERY_STRONG" || ind.Strength == "STRONG" {
			a.Decision = "ADULT"
		}
	}
	return a
}

func (v *ledgerView) livingSituation() livingSituation {
	part := func(match func(*txn) bool, amount bool) *livingPart {
		by, total := v.monthly(match)
		p := &livingPart{Detected: boolPtr(total.count > 0), TransactionIDs: total.ids}
		if amount && total.count > 0 {
			p.MonthlyAmount = amountJSON(v.completeAverage(by))
		}
		return p
	}
	return livingSituation{
		ObservedTimespan: v.span(false),
		Children:         part(ofKind(kChildBenefit), true),
		MotorVehicle:     part(ofKind(kInsuranceCar, kFuel), true),
		Property:         part(func(*txn) bool { return false }, false),
		HousingRent:      part(ofKind(kRent), true),
	}
}

// flow tallies incomings and outgoings of the matching transactions.
func flowOf(in, out tally) flowOverview {
	return flowOverview{Incomings: in.toSum(), Outgoings: out.toSum(), TotalTransactionAmount: amountJSON(in.sum + out.sum),
		TotalTransactionCount: json.Number(strconv.Itoa(in.count + out.count))}
}

// newestFirst lists months newest first, as company modules do.
func (v *ledgerView) newestFirst() []string {
	out := slices.Clone(v.months)
	slices.Reverse(out)
	return out
}

func (v *ledgerView) cash() cashTransactions {
	ins, inTotal := v.monthly(ofKind(kCashDeposit))
	outs, outTotal := v.monthly(ofKind(kCash))
	c := cashTransactions{ObservedTimespan: v.span(false)}
	f := flowOf(inTotal, outTotal)
	c.Overview = &f
	for _, m := range v.newestFirst() {
		c.MonthlyOverview.Items = append(c.MonthlyOverview.Items, flowMonth{Month: m, flowOverview: flowOf(*ins[m], *outs[m])})
	}
	return c
}

func (v *ledgerView) accountInfo(i int) accountInfo {
	a := v.p.accounts[i]
	return accountInfo{AccountID: a.id, IBAN: a.iban, Type: a.typ, Currency: "EUR"}
}

// liquidity: per account and month the flows and the balances of the
// account history's days in that month.
func (v *ledgerView) liquidity() liquidity {
	l := liquidity{ObservedTimespan: v.span(false)}
	var allIn, allOut tally
	for i := range v.p.accounts {
		onAcc := func(in bool) func(*txn) bool {
			return func(t *txn) bool { return t.account == i && (t.amount > 0) == in }
		}
		ins, inTotal := v.monthly(onAcc(true))
		outs, outTotal := v.monthly(onAcc(false))
		allIn.sum, allIn.count, allOut.sum, allOut.count = allIn.sum+inTotal.sum, allIn.count+inTotal.count, allOut.sum+outTotal.sum, allOut.count+outTotal.count
		inTotal.ids, outTotal.ids = nil, nil // liquidity lists no transactions
		f := flowOf(inTotal, outTotal)
		acc := accountLiquidity{Account: v.accountInfo(i), Overview: &f}
		for _, m := range v.newestFirst() {
			in, out := *ins[m], *outs[m]
			in.ids, out.ids = nil, nil
			mo := liquidityMonth{flowMonth: flowMonth{Month: m, flowOverview: flowOf(in, out)}}
			first := true
			var end, lo, hi int64
			for _, b := range v.balances[i] {
				if b.day.Format("2006-01") != m {
					continue
				}
				if first || b.balance < lo {
					lo = b.balance
				}
				if first || b.balance > hi {
					hi = b.balance
				}
				end, first = b.balance, false
			}
			if !first {
				mo.EndOfMonthBalance, mo.MinBalance, mo.MaxBalance = amountJSON(end), amountJSON(lo), amountJSON(hi)
			}
			acc.MonthlyOverview.Items = append(acc.MonthlyOverview.Items, mo)
		}
		l.AccountLiquidity.Items = append(l.AccountLiquidity.Items, acc)
	}
	f := flowOf(allIn, allOut)
	f.Incomings.TransactionIDs, f.Outgoings.TransactionIDs = nil, nil
	l.Overview = &f
	return l
}

// countryOf is the country of a partner's IBAN, "" for none or domestic.
func countryOf(t *txn) string {
	if t.partner == nil || len(t.partner.IBAN) < 2 || strings.HasPrefix(t.partner.IBAN, "DE") {
		return ""
	}
	return t.partner.IBAN[:2]
}

func (v *ledgerView) foreign() foreignPayments {
	f := foreignPayments{ObservedTimespan: v.span(false)}
	byCode := map[string]*[2]tally{}
	var in, out tally
	for i := range v.txns {
		t := &v.txns[i]
		code := countryOf(t)
		if code == "" {
			continue
		}
		if byCode[code] == nil {
			byCode[code] = &[2]tally{}
		}
		if t.amount > 0 {
			byCode[code][0].add(t)
			in.add(t)
		} else {
			byCode[code][1].add(t)
			out.add(t)
		}
	}
	o := flowOf(in, out)
	f.Overview = &o
	for _, code := range sortedKeys(byCode) {
		f.ByState.Items = append(f.ByState.Items, statePayments{Code: code, Incomings: byCode[code][0].toSum(), Outgoings: byCode[code][1].toSum()})
	}
	return f
}

// companyRisk: per account and month returned debits, garnishments and the
// days the end-of-day balance was below the agreed overdraft.
func (v *ledgerView) companyRisk() companyRisk {
	r := companyRisk{ObservedTimespan: v.span(false)}
	for i, a := range v.p.accounts {
		back, _ := v.monthly(func(t *txn) bool { return t.account == i && t.kind == kBackDebit })
		garn, _ := v.monthly(func(t *txn) bool { return t.account == i && t.kind == kGarnishment })
		days := map[string]int{}
		for _, b := range v.balances[i] {
			if b.balance < -a.overdraft {
				days[b.day.Format("2006-01")]++
			}
		}
		acc := accountRisk{Account: v.accountInfo(i)}
		for _, m := range v.newestFirst() {
			acc.MonthlyOverview.Items = append(acc.MonthlyOverview.Items, riskMonth{Month: m,
				BackDebit:     &sum{Count: json.Number(strconv.Itoa(back[m].count)), TransactionIDs: back[m].ids},
				Garnishment:   &sum{Count: json.Number(strconv.Itoa(garn[m].count)), TransactionIDs: garn[m].ids},
				OverdraftDays: json.Number(strconv.Itoa(days[m]))})
		}
		r.AccountRisks.Items = append(r.AccountRisks.Items, acc)
	}
	return r
}

// breakdown: a category breakdown of the matching transactions, all of
// them recurring (they come from the profile's schedules).
func (v *ledgerView) breakdown(match func(*txn) bool) categoryBreakdown {
	by, total := v.monthly(match)
	c := categoryBreakdown{Available: boolPtr(total.count > 0), ObservedTimespan: v.span(false), ContractSummary: []json.RawMessage{}}
	if total.count == 0 {
		return c
	}
	if v.complete > 0 {
		c.Current = amountJSON(by[v.months[v.complete-1]].sum)
	}
	c.Median, c.Average = amountJSON(median(v.completeSums(by))), amountJSON(v.completeAverage(by))
	for _, m := range v.newestFirst() {
		t := by[m]
		c.MonthlyOverview.Items = append(c.MonthlyOverview.Items, breakdownMonth{Month: m, Amount: amountJSON(t.sum),
			RecurringAmount: amountJSON(t.sum), NonRecurringAmount: "0", RecurringTransactionIDs: t.ids})
	}
	return c
}

func (v *ledgerView) staff() staff {
	var s staff
	s.ObservedTimespan = v.span(false)
	pay, ss := v.perCompleteMonth(ofKind(kPayroll)), v.perCompleteMonth(ofKind(kSocialInsurance))
	s.Salary.TotalMonthly, s.Salary.TotalMonthlyExpenses, s.Salary.TotalMonthlyAdditionalWageCosts = amountJSON(pay+ss), amountJSON(pay), amountJSON(ss)
	employees := map[string]bool{}
	_, all := v.monthly(ofKind(kPayroll))
	for i := range v.txns {
		if t := &v.txns[i]; t.kind == kPayroll {
			employees[t.partner.IBAN] = true
		}
	}
	n := json.Number(strconv.Itoa(len(employees)))
	s.Employees.MinNumberOfEmployees, s.Employees.MaxNumberOfEmployees = n, n
	s.Sources.Contracts, s.Sources.TransactionIDs = []json.RawMessage{}, all.ids
	return s
}

// customerSupplier ranks the partners of revenue (customers) and supplier
// payments (suppliers) by amount and by occurrences.
func (v *ledgerView) customerSupplier() customerSupplier {
	rank := func(k *kind) partnerList {
		type acc struct {
			p      PaymentPartner
			total  tally
			months map[string]*tally
			first  time.Time
			last   time.Time
		}
		by := map[string]*acc{}
		var grand tally
		for i := range v.txns {
			t := &v.txns[i]
			if t.kind != k {
				continue
			}
			a := by[t.partner.IBAN]
			if a == nil {
				a = &acc{p: *t.partner, months: map[string]*tally{}, first: t.day}
				by[t.partner.IBAN] = a
			}
			a.total.add(t)
			grand.add(t)
			month := t.day.Format("2006-01")
			if a.months[month] == nil {
				a.months[month] = &tally{}
			}
			a.months[month].add(t)
			a.last = t.day
		}
		list := make([]*acc, 0, len(by))
		for _, a := range by {
			list = append(list, a)
		}
		abs := func(x int64) int64 { return max(x, -x) }
		byRevenue := slices.SortedFunc(slices.Values(list), func(a, b *acc) int {
			return cmp.Or(cmp.Compare(abs(b.total.sum), abs(a.total.sum)), strings.Compare(a.p.IBAN, b.p.IBAN))
		})
		byCount := slices.SortedFunc(slices.Values(list), func(a, b *acc) int {
			return cmp.Or(cmp.Compare(b.total.count, a.total.count), strings.Compare(a.p.IBAN, b.p.IBAN))
		})
		var out partnerList
		for _, a := range byRevenue {
			rr, or := slices.Index(byRevenue, a)+1, slices.Index(byCount, a)+1
			var p partner
			p.PaymentPartner, p.Total = a.p, *a.total.toSum()
			p.Ranking.Rank = json.Number(strconv.FormatFloat(float64(rr+or)/2, 'f', -1, 64))
			p.Ranking.RevenueRank, p.Ranking.OccurrenceRank = json.Number(strconv.Itoa(rr)), json.Number(strconv.Itoa(or))
			p.Ranking.RevenueScore = amountJSON(roundDiv(abs(a.total.sum)*10000, max(1, abs(grand.sum))))
			p.Ranking.OccurrenceScore = amountJSON(roundDiv(int64(a.total.count)*10000, int64(max(1, grand.count))))
			for _, m := range sortedKeys(a.months) {
				p.MonthlyOverview.Items = append(p.MonthlyOverview.Items, sumMonth{Month: m, sum: *a.months[m].toSum()})
			}
			p.PaymentTimespan = &timespan{From: a.first.Format(time.DateOnly), To: a.last.Format(time.DateOnly)}
			out.PartnerList.Items = append(out.PartnerList.Items, p)
		}
		return out
	}
	return customerSupplier{Customers: rank(kRevenue), Suppliers: rank(kSupplier), ObservedTimespan: v.span(false)}
}

// topCategories: per descriptive tag the amounts per month and day, the
// largest totals first.
func (v *ledgerView) topCategories() topCategories {
	type cat struct {
		total int64
		days  map[string]*tally
	}
	by := map[string]*cat{}
	for i := range v.txns {
		t := &v.txns[i]
		c := by[t.kind.tags[0]]
		if c == nil {
			c = &cat{days: map[string]*tally{}}
			by[t.kind.tags[0]] = c
		}
		c.total += t.amount
		d := t.day.Format(time.DateOnly)
		if c.days[d] == nil {
			c.days[d] = &tally{}
		}
		c.days[d].add(t)
	}
	names := sortedKeys(by)
	slices.SortStableFunc(names, func(a, b string) int {
		return cmp.Compare(max(by[b].total, -by[b].total), max(by[a].total, -by[a].total))
	})
	out := topCategories{ObservedTimespan: v.span(false)}
	for _, name := range names {
		c := by[name]
		tc := topCategory{Category: name, PaymentType: "spending"}
		if c.total > 0 {
			tc.PaymentType = "earning"
		}
		for _, m := range v.months {
			mo := topCategoryMonth{Month: m}
			var sum int64
			for _, d := range sortedKeys(c.days) {
				if strings.HasPrefix(d, m) {
					sum += c.days[d].sum
					mo.DailyOverview.Items = append(mo.DailyOverview.Items, dayAmount{Date: d, Amount: amountJSON(c.days[d].sum), TransactionIDs: c.days[d].ids})
				}
			}
			if len(mo.DailyOverview.Items) > 0 {
				mo.Amount = amountJSON(sum)
				tc.MonthlyOverview.Items = append(tc.MonthlyOverview.Items, mo)
			}
		}
		out.Categories.Items = append(out.Categories.Items, tc)
	}
	return out
}

// cockpit combines a few modules, as a tenant might configure it.
func (v *ledgerView) cockpit(typ, id string) cockpit {
	c := cockpit{CockpitID: id, Type: typ, CreatedAt: localMidnight(v.d.today, v.d.zone).Format(time.RFC3339), ObservedTimespan: v.span(false), Sections: map[string]json.RawMessage{}}
	if typ == personUser {
		h := v.householdBudget()
		h.ObservedTimespan = nil
		a := v.adultCheck()
		c.Sections["householdBudget"] = sandboxkit.MustJSON(h)
		c.Sections["adultCheck"] = sandboxkit.MustJSON(struct {
			Decision string `json:"decision"`
		}{a.Decision})
		c.Sections["livingSituation"] = sandboxkit.MustJSON(v.livingSituation())
		return c
	}
	l := v.liquidity()
	st := v.staff()
	st.Sources.TransactionIDs, st.ObservedTimespan = nil, nil
	c.Sections["liquidity"] = sandboxkit.MustJSON(struct {
		Overview *flowOverview `json:"overview"`
	}{l.Overview})
	c.Sections["staff"] = sandboxkit.MustJSON(st)
	return c
}

// moduleDoc builds the document of an endpoint for the modules granted.
func (v *ledgerView) moduleDoc(stream, userID string, granted []module) any {
	switch stream {
	case "person_income", "person_spending", "person_risk":
		doc := map[string]any{"observedTimespan": v.span(false)}
		pm := v.personMatchers()
		for _, m := range granted {
			if m.Key == "overdraftAmount" {
				doc[m.Key] = v.overdraft()
				continue
			}
			doc[m.Key] = v.personModule(pm[m.Name])
		}
		return doc
	case "person_household_budget":
		return v.householdBudget()
	case "person_adult_check":
		return v.adultCheck()
	case "person_living_situation":
		return v.livingSituation()
	case "company_cash_transactions":
		return v.cash()
	case "company_liquidity":
		return v.liquidity()
	case "company_foreign_payments":
		return v.foreign()
	case "company_risk":
		return v.companyRisk()
	case "company_credits":
		return v.breakdown(ofKind(kLoanInstalment))
	case "company_insurances":
		return v.breakdown(ofKind(kBizInsurance))
	case "company_investments":
		return v.breakdown(ofKind(kInvestment))
	case "company_internal_bookings":
		return v.breakdown(func(t *txn) bool { return t.kind == kTransfer && t.amount < 0 })
	case "company_staff":
		return v.staff()
	case "company_customer_supplier":
		return v.customerSupplier()
	case "company_top_categories":
		return v.topCategories()
	case "cockpit_person":
		return v.cockpit(personUser, uuidFor(v.d.seed, "cockpit/"+userID))
	case "cockpit_company":
		return v.cockpit(companyUser, uuidFor(v.d.seed, "cockpit/"+userID))
	}
	return nil
}

// analyticsRoutes serves every path of every module (aliases included).
func (s *Server) analyticsRoutes(user string) {
	streams := map[string][]module{}
	for _, m := range modules() {
		streams[m.Endpoint] = append(streams[m.Endpoint], m)
	}
	for stream, mods := range streams {
		for _, path := range mods[0].Paths {
			s.handle("GET "+user+path, true, func(w http.ResponseWriter, r *http.Request, c *call) {
				if slices.Contains(s.opts.UnservedPaths, path) {
					writeError(w, http.StatusNotFound, "no handler for "+r.URL.Path)
					return
				}
				s.analytics(w, r, c, stream, mods)
			})
		}
	}
}

func (s *Server) analytics(w http.ResponseWriter, r *http.Request, c *call, stream string, mods []module) {
	u, ok := s.userOf(w, r, c)
	if !ok {
		return
	}
	var granted []module
	for _, m := range mods {
		if !slices.ContainsFunc(s.opts.DeniedScopes, func(e string) bool { return scopeMatches(e, m) }) {
			granted = append(granted, m)
		}
	}
	if len(granted) == 0 {
		writeError(w, http.StatusForbidden, "forbidden. No access to this resource")
		return
	}
	if orDefault(u.Type, personUser) != mods[0].UserType {
		writeError(w, http.StatusBadRequest, "this analysis is for "+mods[0].UserType+" users")
		return
	}
	v := s.data.view(s.data.profile(c.tenant, u))
	body := sandboxkit.MustJSON(v.moduleDoc(stream, u.UserID, granted))
	if s.opts.ExtraFields {
		body = extraModuleFields(body, mods[0].Key != "")
	}
	if n := s.opts.Faults.HugeField; n > 0 {
		body = append(body[:len(body)-1], `,"note":"`...)
		body = append(append(body, strings.Repeat("x", int(n))...), `"}`...)
	}
	s.faults.WriteBodyStatus(w, c.faults, http.StatusOK, s.malformModule(stream, u.UserID, body))
}

// extraModuleFields adds ExtraFields' members to an analytics document:
// "modelVersion" at the top and, in a document of keyed modules, "trend"
// in each module.
func extraModuleFields(body []byte, keyed bool) []byte {
	var doc map[string]json.RawMessage
	if json.Unmarshal(body, &doc) != nil {
		return body
	}
	if keyed {
		for key, raw := range doc {
			var m map[string]json.RawMessage
			if key == "observedTimespan" || json.Unmarshal(raw, &m) != nil {
				continue
			}
			m["trend"] = json.RawMessage(`"stable"`)
			doc[key] = sandboxkit.MustJSON(m)
		}
	}
	doc["modelVersion"] = json.RawMessage(`"2026.2"`)
	return sandboxkit.MustJSON(doc)
}

// malformModule applies the Malformed fault to an analytics document: a
// chosen month of a person module gets a string amount, which the
// extractor must reject alone. Only person income, spending and risk have
// such months, so the damage is easy to count.
func (s *Server) malformModule(stream, userID string, body []byte) []byte {
	if s.opts.Faults.Malformed <= 0 || !strings.HasPrefix(stream, "person_") {
		return body
	}
	var doc map[string]json.RawMessage
	if json.Unmarshal(body, &doc) != nil {
		return body
	}
	changed := false
	for _, key := range sortedKeys(doc) {
		var m map[string]json.RawMessage
		var months []map[string]json.RawMessage
		if json.Unmarshal(doc[key], &m) != nil || json.Unmarshal(m["monthlyOverview"], &months) != nil {
			continue
		}
		for i, mo := range months {
			if mo["amount"] != nil && s.faults.Malform("module/"+userID+"/"+key+"/"+string(mo["month"])) {
				months[i]["amount"] = json.RawMessage(`"abc"`)
				changed = true
			}
		}
		m["monthlyOverview"] = sandboxkit.MustJSON(months)
		doc[key] = sandboxkit.MustJSON(m)
	}
	if !changed {
		return body
	}
	return sandboxkit.MustJSON(doc)
}
