package sandbox

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"
)

// This file generates the sandbox's synthetic banking data. Nothing is
// stored: a user's profile comes from a stream seeded by (seed, tenant/user)
// and each month's transactions from a stream seeded by (seed, user, month),
// so any page can be produced on demand and every answer is reproducible.

// HistoryDays is how far back account history reaches ("the past 2 years").
const HistoryDays = 730

// dataset is the shape of the synthetic data; it never changes after start.
type dataset struct {
	seed        uint64
	months      int
	accounts    int
	txPerUser   int
	start       time.Time // first day with data (first day of the first month)
	today       time.Time // last day with data
	historyFrom time.Time // first day of account history
	lifeEvents  bool
	bankSpelled bool           // Options.BankSpelledOwners
	zone        *time.Location // Options.LocalTimestamps; nil: Unix seconds, UTC
	grown       func() int     // transactions per user booked since start (Options.GrowEvery); nil: none
}

func newDataset(o Options) dataset {
	today := time.Date(o.Today.Year(), o.Today.Month(), o.Today.Day(), 0, 0, 0, 0, time.UTC)
	start := time.Date(today.Year(), today.Month()-time.Month(o.Months-1), 1, 0, 0, 0, 0, time.UTC)
	historyFrom := today.AddDate(0, 0, -(HistoryDays - 1))
	if historyFrom.Before(start) {
		historyFrom = start
	}
	return dataset{
		seed:        uint64(o.Seed),
		months:      o.Months,
		accounts:    o.AccountsPerUser,
		txPerUser:   o.TransactionsPerUser,
		start:       start,
		today:       today,
		historyFrom: historyFrom,
		lifeEvents:  o.LifeEvents,
		bankSpelled: o.BankSpelledOwners,
		zone:        o.LocalTimestamps,
	}
}

// kind is what a transaction is: its tags and how a bank would book it.
type kind struct {
	tags        []string // descriptiveTag first, then the broader tags
	de, en      string   // localizedTag
	category    string   // contract category
	text        string   // bookingText
	code        int      // transactionCode
	purposeCode string   // sepaPurposeCode
	mcc         string   // merchantCategoryCode
}

var (
	kSalary             = &kind{tags: []string{"salary", "income", "earning"}, de: "Gehalt", en: "Salary", category: "SALARY", text: "LOHN/GEHALT", code: 153, purposeCode: "SALA"}
	kRent               = &kind{tags: []string{"rent", "living", "spending"}, de: "Miete", en: "Rent", category: "RENT", text: "DAUERAUFTRAG", code: 117, purposeCode: "RENT"}
	kInsuranceLegal     = &kind{tags: []string{"insurance_legal", "insurance", "spending"}, de: "Rechtsschutzversicherung", en: "Legal protection insurance", category: "INSURANCE_LEGAL", text: "FOLGELASTSCHRIFT", code: 105, purposeCode: "INSU"}
	kInsuranceLiability = &kind{tags: []string{"insurance_liability", "insurance", "spending"}, de: "Haftpflichtversicherung", en: "Liability insurance", category: "INSURANCE_LIABILITY", text: "FOLGELASTSCHRIFT", code: 105, purposeCode: "INSU"}
	kInsuranceHousehold = &kind{tags: []string{"insurance_household", "insurance", "spending"}, de: "Hausratversicherung", en: "Household insurance", category: "INSURANCE_HOUSEHOLD", text: "FOLGELASTSCHRIFT", code: 105, purposeCode: "INSU"}
	kInsuranceCar       = &kind{tags: []string{"insurance_car", "insurance", "spending"}, de: "Kfz-Versicherung", en: "Car insurance", category: "INSURANCE_CAR", text: "FOLGELASTSCHRIFT", code: 105, purposeCode: "INSU"}
	kBroadcastFee       = &kind{tags: []string{"broadcasting_fee", "public_fees", "spending"}, de: "Rundfunkbeitrag", en: "Broadcasting fee", category: "GEZ", text: "FOLGELASTSCHRIFT", code: 105}
	kStreaming          = &kind{tags: []string{"streaming", "media", "leisure", "spending"}, de: "Streaming-Dienste", en: "Streaming services", category: "STREAMING", text: "FOLGELASTSCHRIFT", code: 105}
	kMobile             = &kind{tags: []string{"mobile_phone", "telecommunication", "spending"}, de: "Mobilfunk", en: "Mobile phone", category: "MOBILE_PHONE", text: "FOLGELASTSCHRIFT", code: 105}
	kGym                = &kind{tags: []string{"gym", "sports", "leisure", "spending"}, de: "Fitnessstudio", en: "Gym", category: "GYM", text: "FOLGELASTSCHRIFT", code: 105}
	kCardBilling        = &kind{tags: []string{"credit_card_billing", "credit_card", "spending"}, de: "Kreditkartenabrechnung", en: "Credit card billing", category: "CREDIT_CARD", text: "LASTSCHRIFT", code: 105}
	kCardSettlement     = &kind{tags: []string{"credit_card_settlement", "internal_transfer"}, de: "Kreditkartenausgleich", en: "Credit card settlement", text: "GUTSCHRIFT", code: 166}
	kSavings            = &kind{tags: []string{"savings_transfer", "internal_transfer"}, de: "Sparen", en: "Savings transfer", text: "DAUERAUFTRAG", code: 117}
	kTransfer           = &kind{tags: []string{"internal_transfer"}, de: "Umbuchung", en: "Internal transfer", text: "UEBERWEISUNG", code: 116}
	kInterest           = &kind{tags: []string{"interest", "capital_income", "earning"}, de: "Zinsen", en: "Interest", text: "ABSCHLUSS", code: 804}
	kFees               = &kind{tags: []string{"bank_fees", "fees", "spending"}, de: "Kontoführungsentgelt", en: "Account fees", text: "ENTGELT", code: 805}
	kGroceries          = &kind{tags: []string{"groceries", "living", "spending"}, de: "Lebensmittel", en: "Groceries", text: "KARTENZAHLUNG", code: 106, mcc: "5411"}
	kRestaurant         = &kind{tags: []string{"restaurant", "leisure", "spending"}, de: "Restaurants", en: "Restaurants", text: "KARTENZAHLUNG", code: 106, mcc: "5812"}
	kOnlineShopping     = &kind{tags: []string{"online_shopping", "shopping", "spending"}, de: "Online-Shopping", en: "Online shopping", text: "KARTENZAHLUNG", code: 106, mcc: "5999"}
	kFuel               = &kind{tags: []string{"fuel", "mobility", "spending"}, de: "Tankstelle", en: "Fuel", text: "KARTENZAHLUNG", code: 106, mcc: "5541"}
	kDrugstore          = &kind{tags: []string{"drugstore", "living", "spending"}, de: "Drogerie", en: "Drugstore", text: "KARTENZAHLUNG", code: 106, mcc: "5912"}
	kCash               = &kind{tags: []string{"cash_withdrawal", "cash", "spending"}, de: "Bargeldabhebung", en: "Cash withdrawal", text: "BARGELDAUSZAHLUNG", code: 83, mcc: "6011"}
)

// shop is a kind of everyday spending: where, and how much in euros.
type shop struct {
	kind     *kind
	partners []PaymentPartner
	min, max int
}

var shops = []shop{
	{kGroceries, []PaymentPartner{{Name: "REWE Markt GmbH"}, {Name: "EDEKA Center"}, {Name: "ALDI SUED"}, {Name: "LIDL Dienstleistung"}}, 5, 120},
	{kGroceries, []PaymentPartner{{Name: "Baeckerei Mueller"}, {Name: "Wochenmarkt Stand 12"}}, 3, 25},
	{kRestaurant, []PaymentPartner{{Name: "Trattoria Da Mario"}, {Name: "Burger Werk"}, {Name: "Cafe Central"}}, 8, 85},
	{kOnlineShopping, []PaymentPartner{{Name: "Versandhaus Online GmbH"}, {Name: "Elektro Shop24"}}, 12, 250},
	{kFuel, []PaymentPartner{{Name: "Tankstelle Nord"}, {Name: "Autohof Sued"}}, 35, 95},
	{kDrugstore, []PaymentPartner{{Name: "Drogeriemarkt Fuchs"}, {Name: "Apotheke am Markt"}}, 4, 60},
	{kCash, []PaymentPartner{{Name: "Geldautomat Sparkasse"}}, 20, 200},
}

type bank struct{ name, code, bic string }

var banks = []bank{
	{"Sparkasse Musterstadt", "10050000", "BELADEBEXXX"},
	{"Volksbank Beispielland", "37060590", "GENODED1SPK"},
	{"Fino Bank", "12030000", "BYLADEM1001"},
	{"Direktbank Online", "50010517", "INGDDEFFXXX"},
}

var (
	firstNames = []string{"Anna", "Ben", "Clara", "David", "Emma", "Felix", "Hannah", "Jonas", "Lena", "Lukas", "Marie", "Paul", "Sophie", "Tim"}
	lastNames  = []string{"Becker", "Fischer", "Hoffmann", "Koch", "Meyer", "Mueller", "Richter", "Schmidt", "Schneider", "Wagner", "Weber", "Wolf"}
	employers  = []string{"Muster Maschinenbau GmbH", "Beispiel Logistik AG", "Stadtwerke Musterstadt", "Nordlicht Software GmbH", "Klinikum Beispielstadt"}
	streaming  = []struct {
		name  string
		cents int64
	}{{"StreamFlix", 1399}, {"Kino+ Digital", 899}, {"Sportkanal Live", 2999}, {"Serienwelt", 1199}}
)

// profile is one user's recurring life: accounts and scheduled payments.
type profile struct {
	hash     uint64 // seeds the user's month streams
	owner    string
	accounts []account
	specs    []spec
	spend    []int          // accounts that take everyday spending
	card     int            // index of the credit-card account, -1 if none
	everyday int            // everyday transactions in a full month
	zone     *time.Location // Options.LocalTimestamps
	// bankSpelled: own transfers untagged, their partner spelled as a bank
	// prints the owner (Options.BankSpelledOwners).
	bankSpelled bool
}

type account struct {
	id, number, iban, name string
	bank                   bank
	typ                    accountType
	opening                int64 // balance before the first day with data, in cents
	overdraft              int64 // agreed overdraft in cents, 0 if none
}

// spec is a recurring booking: salary, rent, a subscription, a transfer.
type spec struct {
	kind     *kind
	account  int
	partner  PaymentPartner
	mref     string
	purpose  string // format with one %s for the period, e.g. "02.2026"
	amount   int64  // cents, negative = money out
	variable bool   // each booking varies by up to ±15%
	every    int    // months between bookings
	phase    int    // booked in the months where absoluteMonth%every == phase
	day      int    // day of month, 1..28
	first    int    // first and last month index that can have a booking
	last     int
	contract string // contract id; "" when it is no contract (own transfers, fees)
}

// txn is one generated transaction.
type txn struct {
	id      string
	account int
	day     time.Time // booking and value day, 00:00 UTC
	created time.Time // categorization creationDate
	amount  int64     // cents
	kind    *kind
	partner *PaymentPartner
	purpose string
	eref    string
	mref    string
	spec    int // index into profile.specs, -1 for everyday spending and card settlements
}

func (d *dataset) profile(tenant string, u user) *profile {
	if u.Type == companyUser {
		return d.companyProfile(tenant, u.UserID)
	}
	h := hashString(tenant + "/" + u.UserID)
	r := rand.New(rand.NewPCG(d.seed, h))
	p := &profile{hash: h, card: -1, zone: d.zone}
	p.owner = pick(r, firstNames) + " " + pick(r, lastNames)
	if d.bankSpelled {
		// From h, not r: the rest of the ledger draws as without the knob.
		p.bankSpelled = true
		p.owner = spelledFirst[h%uint64(len(spelledFirst))] + " " + spelledLast[h/7%uint64(len(spelledLast))]
	}
	tight := r.IntN(4) == 0 // lives close to (and often in) the overdraft

	for i := range d.accounts {
		a := newAccount(r, i, tight)
		switch a.typ {
		case accountKreditKarte:
			p.card = i
			p.spend = append(p.spend, i)
		case accountGiro:
			p.spend = append(p.spend, i)
		}
		p.accounts = append(p.accounts, a)
	}
	p.everyday = 20 + r.IntN(31)

	// add appends a spec covering every month of data; the pointer it returns
	// is for adjusting that spec and valid only until the next add.
	add := func(k *kind, acc int, partner PaymentPartner, amount int64, every, phase, day int, purpose string) *spec {
		p.specs = append(p.specs, spec{kind: k, account: acc, partner: partner, amount: amount,
			every: every, phase: phase, day: day, first: 0, last: d.months - 1, purpose: purpose})
		return &p.specs[len(p.specs)-1]
	}
	contract := func(s *spec, directDebit bool) {
		s.contract = newUUID(r)
		if directDebit {
			s.mref = strconv.FormatInt(1e12+r.Int64N(9e12), 10)
			s.partner.CreditorID = fmt.Sprintf("DE%02dZZZ%011d", 10+r.IntN(90), r.Int64N(1e11))
		}
	}
	partner := func(name string) PaymentPartner {
		b := pick(r, banks)
		return PaymentPartner{Name: name, IBAN: iban(b.code, fmt.Sprintf("%010d", r.Int64N(1e10))), BIC: b.bic}
	}

	employer := pick(r, employers)
	salary := euros(r, 2300, 5200)
	if tight {
		salary = euros(r, 1500, 2300)
	}
	contract(add(kSalary, 0, partner(employer), salary, 1, 0, 25+r.IntN(4), "LOHN/GEHALT %s "+employer), false)

	share := int64(25 + r.IntN(16))
	if tight {
		share = int64(55 + r.IntN(16))
	}
	rent := -(salary * share / 100 / 1000 * 1000) // whole ten euros
	landlord := pick(r, firstNames) + " " + pick(r, lastNames)
	contract(add(kRent, 0, partner(landlord), rent, 1, 0, 1+r.IntN(3), "Miete %s Wohnung "+strconv.Itoa(1+r.IntN(40))), false)

	if r.IntN(10) < 7 {
		contract(add(kInsuranceLegal, 0, partner("Rechtsschutz Union AG"), -euros(r, 12, 32), 1, 0, 1+r.IntN(15), "Beitrag Rechtsschutz %s"), true)
	}
	if r.IntN(10) < 7 {
		contract(add(kInsuranceLiability, 0, partner("Haftpflicht Versicherung VVaG"), -euros(r, 45, 95), 12, r.IntN(12), 1+r.IntN(28), "Jahresbeitrag Haftpflicht %s"), true)
	}
	if r.IntN(2) == 0 {
		contract(add(kInsuranceHousehold, 0, partner("Hausrat Direkt AG"), -euros(r, 18, 45), 3, r.IntN(3), 1+r.IntN(28), "Hausrat Beitrag %s"), true)
	}
	if r.IntN(10) < 4 {
		contract(add(kInsuranceCar, 0, partner("Kfz-Versicherung Nord AG"), -euros(r, 280, 950), 12, r.IntN(12), 1+r.IntN(28), "Kfz-Beitrag %s"), true)
	}
	// The broadcasting fee: 55.08 every quarter in Feb/May/Aug/Nov, as in the docs' contract example.
	contract(add(kBroadcastFee, 0, partner("Rundfunk ARD, ZDF, DRadio"), -5508, 3, 1, 15, "Rundfunk %s Beitragsnr. "+strconv.Itoa(100000000+r.IntN(900000000))), true)
	for n, i := range r.Perm(len(streaming))[:1+r.IntN(2)] {
		sv := streaming[i]
		s := add(kStreaming, 0, partner(sv.name), -sv.cents, 1, 0, 1+r.IntN(28), sv.name+" Abo %s")
		contract(s, true)
		if n == 1 && d.months >= 6 && r.IntN(2) == 0 {
			s.last = d.months / 2 // cancelled: an inactive contract
		}
	}
	mobile := add(kMobile, 0, partner("Mobilfunk Netz GmbH"), -euros(r, 15, 45), 1, 0, 20+r.IntN(5), "Mobilfunkrechnung %s")
	mobile.variable = true
	contract(mobile, true)
	if r.IntN(10) < 4 {
		gym := add(kGym, 0, partner("FitWerk Studios"), -euros(r, 19, 35), 1, 0, 1+r.IntN(5), "Mitgliedsbeitrag %s")
		gym.first = r.IntN(max(1, d.months/2))
		contract(gym, true)
	}
	if p.card >= 0 {
		contract(add(kStreaming, p.card, partner("Musik Streaming AB"), -1099, 1, 0, 5, "Musik Premium %s"), false)
	} else {
		// A card the user did not connect: account detection finds it.
		billing := add(kCardBilling, 0, partner("Kreditkarten Service Bank AG"), -euros(r, 80, 600), 1, 0, 20, "Kartenabrechnung %s")
		billing.variable = true
		contract(billing, true)
	}
	for i, a := range p.accounts {
		switch {
		case a.typ == accountTagesgeld:
			amount := euros(r, 50, 400)
			if tight {
				amount = euros(r, 10, 50)
			}
			add(kSavings, 0, PaymentPartner{Name: p.owner, IBAN: a.iban}, -amount, 1, 0, 2, "Sparrate %s")
			add(kSavings, i, PaymentPartner{Name: p.owner, IBAN: p.accounts[0].iban}, amount, 1, 0, 2, "Sparrate %s")
			interest := add(kInterest, i, PaymentPartner{Name: a.bank.name}, euros(r, 1, 25), 3, 2, 28, "Zinsen %s")
			interest.variable = true
		case a.typ == accountGiro && i > 0:
			amount := euros(r, 100, 300)
			add(kTransfer, 0, PaymentPartner{Name: p.owner, IBAN: a.iban}, -amount, 1, 0, 3, "Umbuchung Haushalt %s")
			add(kTransfer, i, PaymentPartner{Name: p.owner, IBAN: p.accounts[0].iban}, amount, 1, 0, 3, "Umbuchung Haushalt %s")
		}
		if a.typ == accountGiro {
			add(kFees, i, PaymentPartner{Name: a.bank.name}, -euros(r, 3, 9)-90, 1, 0, 28, "Kontofuehrung %s")
		}
	}
	if d.lifeEvents {
		d.addLifeEvents(p, h)
	}
	return p
}

func newAccount(r *rand.Rand, i int, tight bool) account {
	typ := accountGiro
	switch i {
	case 1:
		typ = accountKreditKarte
	case 2:
		typ = accountTagesgeld
	}
	b := pick(r, banks)
	a := account{id: newUUID(r), typ: typ, bank: b, number: fmt.Sprintf("%010d", r.Int64N(1e10))}
	switch typ {
	case accountGiro:
		a.iban, a.name = iban(b.code, a.number), "Girokonto"
		if i > 0 {
			a.name = "Gemeinschaftskonto"
		}
		a.opening = euros(r, 500, 6000)
		if tight {
			a.opening = euros(r, -300, 200)
		}
		a.overdraft = int64(1+r.IntN(6)) * 50000
	case accountKreditKarte:
		a.number, a.name = fmt.Sprintf("4%03d********%04d", r.IntN(1000), r.IntN(10000)), "Kreditkarte"
	case accountTagesgeld:
		a.iban, a.name = iban(b.code, a.number), "Tagesgeldkonto"
		a.opening = euros(r, 1000, 20000)
	}
	return a
}

func (d *dataset) monthStart(m int) time.Time {
	return time.Date(d.start.Year(), d.start.Month()+time.Month(m), 1, 0, 0, 0, 0, time.UTC)
}

// lastDay is the last day of month m that has data, and whether the month
// is complete (only the current month is not).
func (d *dataset) lastDay(m int) (day int, complete bool) {
	n := daysIn(d.monthStart(m))
	if m == d.months-1 {
		return d.today.Day(), d.today.Day() == n
	}
	return n, true
}

// schedule tells, without generating anything, which specs book in month m,
// whether the card is settled, and how many everyday transactions there are.
// monthCount relies on it, so paging never has to generate skipped months.
func (d *dataset) schedule(p *profile, m int) (due []int, settle bool, everyday int) {
	first := d.monthStart(m)
	abs := first.Year()*12 + int(first.Month()) - 1
	lastDay, complete := d.lastDay(m)
	for i := range p.specs {
		s := &p.specs[i]
		if m >= s.first && m <= s.last && abs%s.every == s.phase && s.day <= lastDay {
			due = append(due, i)
		}
	}
	settle = p.card >= 0 && complete
	if d.txPerUser > 0 {
		target := d.txPerUser / d.months
		if m < d.txPerUser%d.months {
			target++
		}
		fixed := len(due)
		if settle {
			fixed += 2
		}
		return due, settle, max(0, target-fixed)
	}
	return due, settle, p.everyday * lastDay / daysIn(first)
}

func (d *dataset) monthCount(p *profile, m int) int {
	due, settle, everyday := d.schedule(p, m)
	n := len(due) + everyday
	if settle {
		n += 2
	}
	return n + d.grownIn(m)
}

// grownIn is how many transactions month m has grown by (the last month
// only). Read again later it may be more, never less: paging a user whose
// month grew between pages may see a record twice, never miss one.
func (d *dataset) grownIn(m int) int {
	if d.grown == nil || m != d.months-1 {
		return 0
	}
	return d.grown()
}

// grownTxn is the k-th transaction booked after start: a purchase on Today
// from a sequence of its own, so that it never changes.
func (d *dataset) grownTxn(p *profile, k int) txn {
	r := rand.New(rand.NewPCG(d.seed^0x67726f77, p.hash^(uint64(k+1)*0x9e3779b97f4a7c15)))
	acc := 0
	if len(p.spend) > 0 {
		acc = p.spend[k%len(p.spend)]
	}
	sh := &shops[r.IntN(len(shops))]
	if sh.kind == kCash && acc == p.card {
		sh = &shops[0]
	}
	partner := &sh.partners[r.IntN(len(sh.partners))]
	t := txn{account: acc, day: d.today, amount: -euros(r, sh.min, sh.max), kind: sh.kind, partner: partner,
		purpose: partner.Name + " " + d.today.Format("02.01.2006"), spec: -1}
	t.id = "T" + newUUID(r)
	t.created = t.day.Add(18*time.Hour + time.Duration(r.IntN(3600))*time.Second).In(cet)
	return t
}

// month generates month m's transactions sorted by day and account.
func (d *dataset) month(p *profile, m int) []txn {
	due, settle, everyday := d.schedule(p, m)
	r := rand.New(rand.NewPCG(d.seed, p.hash^(uint64(m+1)*0x9e3779b97f4a7c15)))
	first := d.monthStart(m)
	period := first.Format("01.2006")
	lastDay, _ := d.lastDay(m)
	out := make([]txn, 0, len(due)+everyday+2)
	book := func(t txn) {
		t.id = "T" + newUUID(r)
		t.created = t.day.Add(6*time.Hour + time.Duration(r.IntN(12*3600))*time.Second).In(cet)
		out = append(out, t)
	}

	for _, i := range due {
		s := &p.specs[i]
		amount := s.amount
		if s.variable {
			amount += amount * int64(r.IntN(31)-15) / 100
		}
		t := txn{account: s.account, day: first.AddDate(0, 0, s.day-1), amount: amount, kind: s.kind,
			partner: &s.partner, purpose: fmt.Sprintf(s.purpose, period), mref: s.mref, spec: i}
		if s.mref != "" {
			t.eref = fmt.Sprintf("E2E%012d", r.Int64N(1e12))
		}
		book(t)
	}
	for i := range everyday {
		acc := p.spend[i%len(p.spend)]
		sh := &shops[r.IntN(len(shops))]
		if sh.kind == kCash && acc == p.card {
			sh = &shops[0]
		}
		amount := -euros(r, sh.min, sh.max)
		if everyday > 40 { // keep large benchmark users' balances in a sane range
			amount = min(-1, amount*40/int64(everyday))
		}
		day := first.AddDate(0, 0, r.IntN(lastDay))
		partner := &sh.partners[r.IntN(len(sh.partners))]
		book(txn{account: acc, day: day, amount: amount, kind: sh.kind, partner: partner,
			purpose: partner.Name + " " + day.Format("02.01.2006"), spec: -1})
	}
	if settle {
		var spent int64
		for _, t := range out {
			if t.account == p.card {
				spent += t.amount
			}
		}
		day := first.AddDate(0, 0, lastDay-1)
		card := &p.accounts[p.card]
		cardPartner := &PaymentPartner{Name: card.bank.name + " Kreditkarte " + card.number}
		book(txn{account: 0, day: day, amount: spent, kind: kCardBilling, partner: cardPartner,
			purpose: "Kreditkartenabrechnung " + period, spec: -1})
		book(txn{account: p.card, day: day, amount: -spent, kind: kCardSettlement,
			partner: &PaymentPartner{Name: p.owner, IBAN: p.accounts[0].iban}, purpose: "Ausgleich " + period, spec: -1})
	}
	for k := range d.grownIn(m) {
		out = append(out, d.grownTxn(p, k))
	}
	return sortByDayAndAccount(out, len(p.accounts))
}

// sortByDayAndAccount orders a month's transactions by day, then account,
// keeping generation order within both: a counting sort, linear, so paging a
// large user does not pay a comparison sort per page.
func sortByDayAndAccount(txns []txn, accounts int) []txn {
	key := func(t *txn) int { return (t.day.Day()-1)*accounts + t.account }
	next := make([]int, 31*accounts+1) // first free slot per key
	for i := range txns {
		next[key(&txns[i])+1]++
	}
	for k := 1; k < len(next); k++ {
		next[k] += next[k-1]
	}
	out := make([]txn, len(txns))
	for i := range txns {
		k := key(&txns[i])
		out[next[k]] = txns[i]
		next[k]++
	}
	return out
}

// walk generates the user's months in order.
func (d *dataset) walk(p *profile, fn func(txns []txn)) {
	for m := range d.months {
		fn(d.month(p, m))
	}
}

// txnRange returns up to limit transactions from offset of the user's
// transactions booked in [from, to) (zero = open), and how many there are.
// Months entirely inside the range are counted, not generated.
func (d *dataset) txnRange(p *profile, from, to time.Time, offset, limit int) ([]txn, int) {
	var out []txn
	total := 0
	for m := range d.months {
		first := d.monthStart(m)
		end := first.AddDate(0, 1, 0)
		if (!to.IsZero() && !first.Before(to)) || (!from.IsZero() && !end.After(from)) {
			continue
		}
		inside := (from.IsZero() || !first.Before(from)) && (to.IsZero() || !end.After(to))
		var txns []txn
		n := 0
		if inside {
			n = d.monthCount(p, m)
		} else {
			txns = slices.DeleteFunc(d.month(p, m), func(t txn) bool {
				return (!from.IsZero() && t.day.Before(from)) || (!to.IsZero() && !t.day.Before(to))
			})
			n = len(txns)
		}
		if total+n > offset && total < offset+limit {
			if txns == nil {
				txns = d.month(p, m)
			}
			out = append(out, txns[max(0, offset-total):min(n, offset+limit-total)]...)
		}
		total += n
	}
	return out, total
}

// dayBalance is an account's balance at the end of a day.
type dayBalance struct {
	day     time.Time
	balance int64
}

// balances returns each account's end-of-day balances from historyFrom to
// today, oldest first: opening balance plus every amount booked up to that day.
func (d *dataset) balances(p *profile) [][]dayBalance {
	running := make([]int64, len(p.accounts))
	out := make([][]dayBalance, len(p.accounts))
	for i, a := range p.accounts {
		running[i] = a.opening
	}
	for m := range d.months {
		txns := d.month(p, m)
		first := d.monthStart(m)
		lastDay, _ := d.lastDay(m)
		k := 0
		for dd := range lastDay {
			day := first.AddDate(0, 0, dd)
			for ; k < len(txns) && txns[k].day.Equal(day); k++ {
				running[txns[k].account] += txns[k].amount
			}
			if !day.Before(d.historyFrom) {
				for i := range out {
					out[i] = append(out[i], dayBalance{day, running[i]})
				}
			}
		}
	}
	return out
}

var intervals = map[int]struct {
	name string
	days int
}{1: {"MONTHLY", 30}, 3: {"QUARTERLY", 90}, 6: {"HALF_YEARLY", 180}, 12: {"YEARLY", 365}}

// contracts derives the contracts from the bookings of the recurring specs;
// a spec booked fewer than twice is no recurrence yet.
func (d *dataset) contracts(p *profile) []Contract {
	bookings := make([][]*txn, len(p.specs))
	d.walk(p, func(txns []txn) {
		for i := range txns {
			if t := &txns[i]; t.spec >= 0 && p.specs[t.spec].contract != "" {
				bookings[t.spec] = append(bookings[t.spec], t)
			}
		}
	})
	var out []Contract
	for i, booked := range bookings {
		if len(booked) < 2 {
			continue
		}
		s := &p.specs[i]
		amounts := make([]int64, len(booked))
		refs := make([]TransactionRef, len(booked))
		for j, t := range booked {
			amounts[j], refs[j] = t.amount, TransactionRef{TransactionID: t.id}
		}
		iv := intervals[s.every]
		next := booked[len(booked)-1].day.AddDate(0, s.every, 0)
		c := Contract{
			ContractID:        s.contract,
			Amount:            amountJSON(median(amounts)),
			AmountConsistency: "FIX",
			Category:          s.kind.category,
			ContractPartner:   &s.partner,
			Duration:          iv.days,
			Interval:          iv.name,
			IsActive:          !next.AddDate(0, 0, 8).Before(d.today),
			MandateReference:  s.mref,
			NextBookingDate:   next.Format(time.DateOnly),
			NextBookingRange:  []string{next.AddDate(0, 0, -8).Format(time.DateOnly), next.AddDate(0, 0, 8).Format(time.DateOnly)},
			Transactions:      refs,
			AdditionalInfo:    json.RawMessage(`{}`),
		}
		if s.variable {
			c.AmountConsistency = "VARIABLE"
		}
		out = append(out, c)
	}
	return out
}

// detection lists the user's connected accounts with today's balance and
// payment statistics, plus a credit card found through its billings when the
// user connected none.
func (d *dataset) detection(p *profile) accountDetection {
	amounts := make([][]int64, len(p.accounts))
	balance := make([]int64, len(p.accounts))
	for i, a := range p.accounts {
		balance[i] = a.opening
	}
	var billed []*txn
	billing := -1
	d.walk(p, func(txns []txn) {
		for i := range txns {
			t := &txns[i]
			amounts[t.account] = append(amounts[t.account], t.amount)
			balance[t.account] += t.amount
			if t.spec >= 0 && p.specs[t.spec].kind == kCardBilling {
				billed, billing = append(billed, t), t.spec
			}
		}
	})
	period := &analysisPeriod{Since: localMidnight(d.start, d.zone), Until: localMidnight(d.today, d.zone)}
	var out accountDetection
	view := &out.AccountsOverview
	view.AccountsView, view.CreditsView = []detectedAccount{}, []detectedAccount{}
	for i, a := range p.accounts {
		acc := detectedAccount{
			bankAccount: bankAccount{
				AccountID: a.id, AccountNumber: a.number, Balance: amountJSON(balance[i]),
				BankCode: a.bank.code, BankName: a.bank.name, BIC: a.bank.bic,
				Overdraft: &overdraft{Available: a.overdraft > 0}, Currency: "EUR",
				IBAN: a.iban, Name: a.name, Owner: p.owner, Type: a.typ,
			},
			AdditionalAnalysesInfo: &additionalAnalysesInfo{IsUserAdded: true, AnalysisPeriod: period, Analysis: stats(amounts[i])},
		}
		if a.overdraft > 0 {
			acc.Overdraft.Amount = amountJSON(a.overdraft)
		}
		// Where the docs' example puts creditorId differs between the views.
		if a.typ == accountKreditKarte {
			view.CreditsView = append(view.CreditsView, acc)
		} else {
			acc.AdditionalAnalysesInfo.CreditorID = new(string)
			view.AccountsView = append(view.AccountsView, acc)
		}
	}
	if len(billed) > 0 {
		spent := make([]int64, len(billed))
		ids := make([]string, len(billed))
		for i, t := range billed {
			spent[i], ids[i] = t.amount, t.id
		}
		analysis := stats(spent)
		analysis.Spending = &spendingStats{Median: analysis.MedianSpending, Average: analysis.AverageSpending, TransactionIDs: ids}
		view.CreditsView = append(view.CreditsView, detectedAccount{
			bankAccount:            bankAccount{Type: accountKreditKarte},
			AdditionalAnalysesInfo: &additionalAnalysesInfo{IsUserAdded: false, AnalysisPeriod: period, Analysis: analysis},
			CreditorID:             p.specs[billing].partner.CreditorID,
		})
	}
	return out
}

func stats(amounts []int64) *accountStats {
	var earning, spending []int64
	for _, a := range amounts {
		if a > 0 {
			earning = append(earning, a)
		} else {
			spending = append(spending, a)
		}
	}
	return &accountStats{
		Median: amountJSON(median(amounts)), Average: amountJSON(average(amounts)),
		MedianEarning: amountJSON(median(earning)), MedianSpending: amountJSON(median(spending)),
		AverageEarning: amountJSON(average(earning)), AverageSpending: amountJSON(average(spending)),
	}
}

// transaction is t's raw transaction; its dates are Unix seconds, or the
// booking day's midnight in zone as RFC 3339 text.
func (t *txn) transaction(zone *time.Location) *transaction {
	day := timestamp{Unix: t.day.Unix()}
	if zone != nil {
		day = timestamp{Text: localMidnight(t.day, zone).Format(time.RFC3339)}
	}
	return &transaction{
		TransactionID:        t.id,
		Amount:               amountJSON(t.amount),
		Currency:             "EUR",
		BookingDate:          day,
		ValueDate:            day,
		BookingText:          t.kind.text,
		Purpose:              t.purpose,
		PaymentPartner:       t.partner,
		EndToEndReference:    t.eref,
		MandateReference:     t.mref,
		MerchantCategoryCode: t.kind.mcc,
		SEPAPurposeCode:      t.kind.purposeCode,
		TransactionCode:      t.kind.code,
	}
}

func (p *profile) categorization(t *txn, withTransaction bool, locale string) categorization {
	c := categorization{
		AccountID:      p.accounts[t.account].id,
		TransactionID:  t.id,
		CreationDate:   inZone(t.created, p.zone),
		DescriptiveTag: t.kind.tags[0],
		Tags:           t.kind.tags,
	}
	own := slices.Contains(t.kind.tags, "internal_transfer")
	if p.bankSpelled && own {
		c.Tags = slices.DeleteFunc(slices.Clone(t.kind.tags), func(s string) bool { return s == "internal_transfer" })
		c.DescriptiveTag = "transfer"
		if len(c.Tags) > 0 {
			c.DescriptiveTag = c.Tags[0]
		}
	}
	switch locale {
	case "de":
		c.LocalizedTag = t.kind.de
	case "en":
		c.LocalizedTag = t.kind.en
	}
	if withTransaction {
		c.Transaction = t.transaction(p.zone)
		if p.bankSpelled && own && t.partner != nil && t.partner.Name == p.owner {
			partner := *t.partner
			partner.Name = bankSpelling(p.owner, t.id)
			c.Transaction.PaymentPartner = &partner
		}
	}
	return c
}

// Names of Options.BankSpelledOwners.
var (
	spelledFirst = []string{"Jürgen", "Märta", "Björn", "Søren", "Åsa", "Jörg", "Ærlig"}
	spelledLast  = []string{"Schröder", "Åkerlund", "Bergström", "Kjærgaard", "Müller", "Weiß", "Sæther", "Öberg"}
)

// bankSpelling is owner as a bank may print its customer, the form chosen
// by the transaction's id: upper-case, transliterated or folded to ASCII,
// surname first or with an initial.
func bankSpelling(owner, id string) string {
	first, last, _ := strings.Cut(owner, " ")
	translit := strings.NewReplacer("ä", "ae", "ö", "oe", "ü", "ue", "ß", "ss", "å", "aa", "æ", "ae", "ø", "oe",
		"Ä", "Ae", "Ö", "Oe", "Ü", "Ue", "Å", "Aa", "Æ", "Ae", "Ø", "Oe")
	ascii := strings.NewReplacer("ä", "a", "ö", "o", "ü", "u", "ß", "ss", "å", "a", "æ", "ae", "ø", "o",
		"Ä", "A", "Ö", "O", "Ü", "U", "Å", "A", "Æ", "Ae", "Ø", "O")
	switch hashString(id) % 4 {
	case 0:
		return strings.ToUpper(translit.Replace(last + ", " + first))
	case 1:
		return strings.ToUpper(ascii.Replace(last + " " + first))
	case 2:
		return string([]rune(first)[0]) + ". " + strings.ToUpper(ascii.Replace(last))
	}
	return translit.Replace(first + " " + last)
}

// inZone is the instant t in zone; t itself when zone is nil.
func inZone(t time.Time, zone *time.Location) time.Time {
	if zone == nil {
		return t
	}
	return t.In(zone)
}

// localMidnight is the start of day (a date, 00:00 UTC) in zone; day
// itself when zone is nil.
func localMidnight(day time.Time, zone *time.Location) time.Time {
	if zone == nil {
		return day
	}
	return time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, zone)
}

// cet is the offset of the docs' creationDate example (+01:00).
var cet = time.FixedZone("CET", 3600)

// amountJSON prints cents as a float serializer would: 150, 12.5, -55.08.
func amountJSON(cents int64) json.Number {
	s := fixed2(cents)
	for s[len(s)-1] == '0' {
		s = s[:len(s)-1]
	}
	if s[len(s)-1] == '.' {
		s = s[:len(s)-1]
	}
	return json.Number(s)
}

// fixed2 prints cents as an exact decimal with two places: -1234.50.
func fixed2(cents int64) string {
	sign := ""
	if cents < 0 {
		sign, cents = "-", -cents
	}
	return fmt.Sprintf("%s%d.%02d", sign, cents/100, cents%100)
}

// euros draws an amount in cents between lo and hi euros.
func euros(r *rand.Rand, lo, hi int) int64 {
	return int64(lo)*100 + r.Int64N(int64(hi-lo)*100+1)
}

func median(v []int64) int64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(v))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return roundDiv(s[n/2-1]+s[n/2], 2)
}

func average(v []int64) int64 {
	if len(v) == 0 {
		return 0
	}
	var sum int64
	for _, x := range v {
		sum += x
	}
	return roundDiv(sum, int64(len(v)))
}

// roundDiv divides, rounding half away from zero.
func roundDiv(a, b int64) int64 {
	if a < 0 {
		return -((-a + b/2) / b)
	}
	return (a + b/2) / b
}

func daysIn(first time.Time) int { return first.AddDate(0, 1, -1).Day() }

func pick[T any](r *rand.Rand, from []T) T { return from[r.IntN(len(from))] }

func hashString(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// newUUID draws a version-4-shaped UUID.
func newUUID(r *rand.Rand) string {
	var raw [16]byte
	binary.BigEndian.PutUint64(raw[:8], r.Uint64()&^0xf000|0x4000)
	binary.BigEndian.PutUint64(raw[8:], r.Uint64()&^(3<<62)|1<<63)
	var out [36]byte
	hex.Encode(out[:], raw[:4])
	out[8] = '-'
	hex.Encode(out[9:], raw[4:6])
	out[13] = '-'
	hex.Encode(out[14:], raw[6:8])
	out[18] = '-'
	hex.Encode(out[19:], raw[8:10])
	out[23] = '-'
	hex.Encode(out[24:], raw[10:])
	return string(out[:])
}

// uuidFor derives a stable UUID from the seed and a key.
func uuidFor(seed uint64, key string) string {
	return newUUID(rand.New(rand.NewPCG(seed, hashString(key))))
}

// iban builds a German IBAN with valid check digits.
func iban(bankCode, accountNumber string) string {
	bban := bankCode + accountNumber
	rem := 0
	for _, c := range bban + "131400" { // "DE00" moved to the end, D=13, E=14
		rem = (rem*10 + int(c-'0')) % 97
	}
	return fmt.Sprintf("DE%02d%s", 98-rem, bban)
}
