package sandbox

import (
	"slices"
	"strings"
)

// User types (POST /api/users "type").
const (
	personUser  = "person"
	companyUser = "company"
)

// module is one finoOS analytics module the sandbox serves.
type module struct {
	// Name is the module's scope, normalized.
	Name string
	// Scopes are the spellings of its scope in the docs.
	Scopes []string
	// Endpoint names the endpoint; the modules of one endpoint share it
	// (income's ten modules come from one call).
	Endpoint string
	// Paths after /api/users/{user-id}: the endpoint's documented names.
	Paths []string
	// UserType is the kind of user the endpoint serves: person or company.
	UserType string
	// Key is the member of the endpoint's document that holds the module,
	// "" for the whole document.
	Key string
}

// modules are the analytics modules, by endpoint.
func modules() []module {
	var (
		income    = []string{"/analysis/person/income"}
		spending  = []string{"/analysis/person/spending"}
		risk      = []string{"/analysis/person/risk"}
		path      = func(p ...string) []string { return p }
		sc        = func(s ...string) []string { return s }
		person, c = personUser, companyUser
	)
	return []module{
		{"person-income-salary", sc("person-income-salary"), "person_income", income, person, "salary"},
		{"person-income-pension", sc("person-income-pension"), "person_income", income, person, "pension"},
		{"person-income-child-benefit", sc("person-income-child-benefit"), "person_income", income, person, "childBenefit"},
		{"person-income-parental-allowance", sc("person-income-parental-allowance"), "person_income", income, person, "parentalAllowance"},
		{"person-income-rental", sc("person-income-rental"), "person_income", income, person, "rental"},
		{"person-income-investment", sc("person-income-investment"), "person_income", income, person, "investment"},
		{"person-income-loan", sc("person-income-loan"), "person_income", income, person, "loan"},
		{"person-income-alimony", sc("person-income-alimony"), "person_income", income, person, "alimony"},
		{"person-income-self-employment", sc("person-income-self-employment"), "person_income", income, person, "selfEmployment"},
		{"person-income-other", sc("person-income-other"), "person_income", income, person, "other"},
		{"person-spending-rent", sc("person-spending-rent"), "person_spending", spending, person, "rent"},
		{"person-spending-investment", sc("person-spending-investment"), "person_spending", spending, person, "investment"},
		{"person-spending-insurance", sc("person-spending-insurance"), "person_spending", spending, person, "insurance"},
		{"person-spending-credit", sc("person-spending-credit"), "person_spending", spending, person, "credit"},
		{"person-spending-credit-card", sc("person-spending-credit-card", "person-spending-creditCard"), "person_spending", spending, person, "creditCard"},
		{"person-spending-other", sc("person-spending-other"), "person_spending", spending, person, "other"},
		{"person-risk-back-debit", sc("person-risk-back-debit", "person-risk-backDebit"), "person_risk", risk, person, "backDebit"},
		{"person-risk-garnishment", sc("person-risk-garnishment"), "person_risk", risk, person, "garnishment"},
		{"person-risk-collection", sc("person-risk-collection"), "person_risk", risk, person, "collection"},
		{"person-risk-gambling", sc("person-risk-gambling"), "person_risk", risk, person, "gambling"},
		{"person-risk-overdraft-amount", sc("person-risk-overdraft-amount"), "person_risk", risk, person, "overdraftAmount"},
		{"person-household-budget", sc("person-household-budget"), "person_household_budget", path("/analysis/person/household-budget"), person, ""},
		{"person-adult-check", sc("person-adult-check"), "person_adult_check", path("/analysis/person/adult-check"), person, ""},
		{"person-living-situation", sc("person-living-situation"), "person_living_situation", path("/analysis/person/living-situation"), person, ""},
		{"company-cash", sc("company-cash"), "company_cash_transactions", path("/analysis/company/cash-transactions", "/analysis/company/cashflow"), c, ""},
		{"company-liquidity", sc("company-liquidity"), "company_liquidity", path("/analysis/company/liquidity"), c, ""},
		{"company-foreign-payment", sc("company-foreign-payment"), "company_foreign_payments", path("/analysis/company/foreign-payments"), c, ""},
		{"company-risk", sc("company-risk"), "company_risk", path("/analysis/company/risk"), c, ""},
		{"company-credit", sc("company-credit"), "company_credits", path("/analysis/company/credits"), c, ""},
		{"company-insurance", sc("company-insurance"), "company_insurances", path("/analysis/company/insurances"), c, ""},
		{"company-investment", sc("company-investment"), "company_investments", path("/analysis/company/investments"), c, ""},
		{"company-internal-booking", sc("company-internal-booking"), "company_internal_bookings", path("/analysis/company/internal-bookings"), c, ""},
		{"company-staff", sc("company-staff"), "company_staff", path("/analysis/company/staff"), c, ""},
		{"company-customer-supplier", sc("company-customer-supplier"), "company_customer_supplier", path("/analysis/company/customer-supplier"), c, ""},
		{"company-top-category", sc("company-top-category"), "company_top_categories", path("/analysis/company/top-categories"), c, ""},
		{"cockpit-person", sc("cockpits"), "cockpit_person", path("/cockpits/person"), person, ""},
		{"cockpit-company", sc("cockpits"), "cockpit_company", path("/cockpits/company"), c, ""},
	}
}

// scopeMatches tells whether a scope entry (a name, a documented spelling,
// or a prefix ending in "*") names module m.
func scopeMatches(entry string, m module) bool {
	if prefix, ok := strings.CutSuffix(entry, "*"); ok {
		return strings.HasPrefix(m.Name, prefix) || slices.ContainsFunc(m.Scopes, func(s string) bool { return strings.HasPrefix(s, prefix) })
	}
	return entry == m.Name || slices.Contains(m.Scopes, entry)
}
