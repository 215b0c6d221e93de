package fino

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/transform"
)

// User types (POST /api/users "type").
const (
	personUser  = "person"
	companyUser = "company"
)

// moduleTransform turns one module's part of an endpoint's document into
// insights rows (and rejects) through s.
type moduleTransform func(s *insightSink, section json.RawMessage)

// Module is one finoOS analytics module: a row of the table below.
type Module struct {
	// Name is the normalized scope and the value of insights.module.
	Name string
	// Scopes are the spellings of its scope in the docs; the first is the
	// one the scopes table uses. Config accepts any of them (assumption 45).
	Scopes []string
	// Stream is the stream's name after "fino.analytics."; the modules of
	// one stream share its endpoint (income's ten modules come from one call).
	Stream string
	// Paths after /api/users/{user-id}; the later ones are other names the
	// docs use for the same endpoint, tried when the first answers 404.
	Paths []string
	// UserType is the kind of user the endpoint serves: person or company.
	UserType string
	// Key is the member of the endpoint's document that holds the module,
	// "" for the whole document; it also prefixes person modules' metrics.
	Key       string
	Transform moduleTransform
	// Tables are the tables the transform writes: insights, and for
	// liquidity account_balances too. The stream writes their union.
	Tables []transform.Table
}

// Modules is the table of analytics modules. Adding one is a transform
// function and a line here; its stream appears by itself.
func Modules() []Module {
	var (
		income    = []string{"/analysis/person/income"}
		spending  = []string{"/analysis/person/spending"}
		risk      = []string{"/analysis/person/risk"}
		path      = func(p ...string) []string { return p }
		sc        = func(s ...string) []string { return s }
		person, c = personUser, companyUser
		ins       = []transform.Table{transform.Insights}
		insBal    = []transform.Table{transform.Insights, transform.AccountBalances}
	)
	return []Module{
		{"person-income-salary", sc("person-income-salary"), "person_income", income, person, "salary", personMonthly, ins},
		{"person-income-pension", sc("person-income-pension"), "person_income", income, person, "pension", personMonthly, ins},
		{"person-income-child-benefit", sc("person-income-child-benefit"), "person_income", income, person, "childBenefit", personMonthly, ins},
		{"person-income-parental-allowance", sc("person-income-parental-allowance"), "person_income", income, person, "parentalAllowance", personMonthly, ins},
		{"person-income-rental", sc("person-income-rental"), "person_income", income, person, "rental", personMonthly, ins},
		{"person-income-investment", sc("person-income-investment"), "person_income", income, person, "investment", personMonthly, ins},
		{"person-income-loan", sc("person-income-loan"), "person_income", income, person, "loan", personMonthly, ins},
		{"person-income-alimony", sc("person-income-alimony"), "person_income", income, person, "alimony", personMonthly, ins},
		{"person-income-self-employment", sc("person-income-self-employment"), "person_income", income, person, "selfEmployment", personMonthly, ins},
		{"person-income-other", sc("person-income-other"), "person_income", income, person, "other", personMonthly, ins},
		{"person-spending-rent", sc("person-spending-rent"), "person_spending", spending, person, "rent", personMonthly, ins},
		{"person-spending-investment", sc("person-spending-investment"), "person_spending", spending, person, "investment", personMonthly, ins},
		{"person-spending-insurance", sc("person-spending-insurance"), "person_spending", spending, person, "insurance", personMonthly, ins},
		{"person-spending-credit", sc("person-spending-credit"), "person_spending", spending, person, "credit", personMonthly, ins},
		{"person-spending-credit-card", sc("person-spending-credit-card", "person-spending-creditCard"), "person_spending", spending, person, "creditCard", personMonthly, ins},
		{"person-spending-other", sc("person-spending-other"), "person_spending", spending, person, "other", personMonthly, ins},
		{"person-risk-back-debit", sc("person-risk-back-debit", "person-risk-backDebit"), "person_risk", risk, person, "backDebit", personMonthly, ins},
		{"person-risk-garnishment", sc("person-risk-garnishment"), "person_risk", risk, person, "garnishment", personMonthly, ins},
		{"person-risk-collection", sc("person-risk-collection"), "person_risk", risk, person, "collection", personMonthly, ins},
		{"person-risk-gambling", sc("person-risk-gambling"), "person_risk", risk, person, "gambling", personMonthly, ins},
		{"person-risk-overdraft-amount", sc("person-risk-overdraft-amount"), "person_risk", risk, person, "overdraftAmount", personOverdraft, ins},
		{"person-household-budget", sc("person-household-budget"), "person_household_budget", path("/analysis/person/household-budget"), person, "", householdBudget, ins},
		{"person-adult-check", sc("person-adult-check"), "person_adult_check", path("/analysis/person/adult-check"), person, "", adultCheck, ins},
		{"person-living-situation", sc("person-living-situation"), "person_living_situation", path("/analysis/person/living-situation"), person, "", livingSituation, ins},
		{"company-cash", sc("company-cash"), "company_cash_transactions", path("/analysis/company/cash-transactions", "/analysis/company/cashflow"), c, "", cashTransactions, ins},
		{"company-liquidity", sc("company-liquidity"), "company_liquidity", path("/analysis/company/liquidity"), c, "", liquidity, insBal},
		{"company-foreign-payment", sc("company-foreign-payment"), "company_foreign_payments", path("/analysis/company/foreign-payments"), c, "", foreignPayments, ins},
		{"company-risk", sc("company-risk"), "company_risk", path("/analysis/company/risk"), c, "", companyRisk, ins},
		{"company-credit", sc("company-credit"), "company_credits", path("/analysis/company/credits"), c, "", categoryBreakdown, ins},
		{"company-insurance", sc("company-insurance"), "company_insurances", path("/analysis/company/insurances"), c, "", categoryBreakdown, ins},
		{"company-investment", sc("company-investment"), "company_investments", path("/analysis/company/investments"), c, "", categoryBreakdown, ins},
		{"company-internal-booking", sc("company-internal-booking"), "company_internal_bookings", path("/analysis/company/internal-bookings"), c, "", categoryBreakdown, ins},
		{"company-staff", sc("company-staff"), "company_staff", path("/analysis/company/staff"), c, "", staff, ins},
		{"company-customer-supplier", sc("company-customer-supplier"), "company_customer_supplier", path("/analysis/company/customer-supplier"), c, "", customerSupplier, ins},
		{"company-top-category", sc("company-top-category"), "company_top_categories", path("/analysis/company/top-categories"), c, "", topCategories, ins},
		{"cockpit-person", sc("cockpits"), "cockpit_person", path("/cockpits/person"), person, "", cockpit, ins},
		{"cockpit-company", sc("cockpits"), "cockpit_company", path("/cockpits/company"), c, "", cockpit, ins},
	}
}

// Scopes are the analytics modules enabled per tenant (FINSYNC_FINO_SCOPES).
// The zero value enables every module.
type Scopes struct {
	all       []string            // entries for every tenant
	perTenant map[string][]string // entries for one tenant
}

// ParseScopes reads entries "scope" (every tenant) or "tenant/scope"; a
// scope is a module name, any documented spelling of its scope, or a
// prefix ending in "*" (person-income-*). No entries: everything enabled.
// A tenant with entries of its own gets those plus the untenanted ones.
func ParseScopes(entries []string) (Scopes, error) {
	var s Scopes
	var bad []string
	mods := Modules()
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		tenant, scope, found := strings.Cut(e, "/")
		if !found {
			tenant, scope = "", e
		}
		if scope == "" || (found && tenant == "") || !slices.ContainsFunc(mods, func(m Module) bool { return scopeMatches(scope, m) }) {
			bad = append(bad, e)
			continue
		}
		if tenant == "" {
			s.all = append(s.all, scope)
			continue
		}
		if s.perTenant == nil {
			s.perTenant = map[string][]string{}
		}
		s.perTenant[tenant] = append(s.perTenant[tenant], scope)
	}
	if len(bad) > 0 {
		return Scopes{}, fmt.Errorf("no analytics module matches %q (want [tenant/]scope, e.g. person-income-salary, company-*, cockpits)", bad)
	}
	return s, nil
}

// Tenants are the tenants entries name.
func (s Scopes) Tenants() []string {
	var out []string
	for t := range s.perTenant {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// Enabled tells whether tenant may ask for module m.
func (s Scopes) Enabled(tenant string, m Module) bool {
	if len(s.all) == 0 && len(s.perTenant) == 0 {
		return true
	}
	entries := append(slices.Clone(s.all), s.perTenant[tenant]...)
	return slices.ContainsFunc(entries, func(e string) bool { return scopeMatches(e, m) })
}

func scopeMatches(entry string, m Module) bool {
	if prefix, ok := strings.CutSuffix(entry, "*"); ok {
		return strings.HasPrefix(m.Name, prefix) || slices.ContainsFunc(m.Scopes, func(s string) bool { return strings.HasPrefix(s, prefix) })
	}
	return entry == m.Name || slices.Contains(m.Scopes, entry)
}

// AnalyticsStreams are the streams of the analytics modules, one per
// endpoint, in the order of Modules.
func AnalyticsStreams(a *API) []extract.Stream {
	var order []string
	by := map[string][]Module{}
	for _, m := range Modules() {
		if by[m.Stream] == nil {
			order = append(order, m.Stream)
		}
		by[m.Stream] = append(by[m.Stream], m)
	}
	out := make([]extract.Stream, 0, len(order))
	for _, name := range order {
		mods := by[name]
		var tables []transform.Table
		for _, m := range mods {
			for _, t := range m.Tables {
				if !slices.ContainsFunc(tables, func(have transform.Table) bool { return have.Name == t.Name }) {
					tables = append(tables, t)
				}
			}
		}
		out = append(out, extract.Stream{Name: "fino.analytics." + name, Provider: provider, SubjectKind: "user",
			Stats: a.Stats, Tables: tables, Run: a.runAnalytics(mods)})
	}
	return out
}

// runAnalytics reads one endpoint for each user of its type and hands each
// enabled module its part of the document. A snapshot: no cursor.
//
// A 403 means the client lacks the scope: the stream asks no further user
// this run and records it once, as one etl_rejects row, instead of failing
// every user. A disabled scope makes no request at all.
func (a *API) runAnalytics(mods []Module) func(context.Context, extract.Request, extract.Output) (string, error) {
	return func(ctx context.Context, req extract.Request, out extract.Output) (string, error) {
		var enabled []Module
		for _, m := range mods {
			if a.cfg.Scopes.Enabled(req.Tenant, m) {
				enabled = append(enabled, m)
			}
		}
		if len(enabled) == 0 {
			return "", nil
		}
		ins := NewInsightsBuilder(a.mem, req.Lineage)
		defer ins.Release()
		bal := NewBalancesBuilder(a.mem, req.Lineage)
		defer bal.Release()
		c := a.clients.Get(req.Tenant)
		first := enabled[0]
		err := extract.Fan(ctx, req.Subjects, req.Registry, 1, out, func() struct{} { return struct{}{} },
			func(ctx context.Context, _ struct{}, s extract.Subject, out extract.Output) error {
				typ, err := a.userType(ctx, c, req.Tenant, s.ID)
				if err == nil && typ != first.UserType {
					return nil // a person endpoint has nothing for a company, and the reverse
				}
				if err == nil {
					err = a.getModule(ctx, c, s.ID, first, func(doc []byte) error {
						rejects := rejectModules(ins, bal, s, enabled, doc, c)
						if rejects == nil {
							rejects = transformModules(ins, bal, s, enabled, doc)
						}
						for _, rej := range rejects {
							if err := out.Reject(rej); err != nil {
								return err
							}
						}
						return nil
					})
				}
				var herr *extract.HTTPError
				if errors.As(err, &herr) && herr.Status == http.StatusForbidden {
					names := make([]string, len(enabled))
					for i, m := range enabled {
						names[i] = m.Name
					}
					err = out.Reject(extract.Reject{Table: transform.Insights.Name, Key: "scope:" + strings.Join(names, ","),
						Reason: fmt.Sprintf("finoOS refused %s with 403: the client lacks scope %s; skipped for the rest of this run",
							first.Stream, strings.Join(names, ",")), Raw: herr.Body})
					return cmp.Or(err, errScopeRefused)
				}
				if err != nil {
					return extract.SkipGone(ctx, req.Registry, s, err, unknownUser)
				}
				return a.flush(out, transform.Insights, ins, false)
			},
			func(_ struct{}, out extract.Output) error {
				return errors.Join(a.flush(out, transform.Insights, ins, true), a.flush(out, transform.AccountBalances, bal, true))
			})
		if errors.Is(err, errScopeRefused) {
			err = nil // recorded as one reject: the users asked before it loaded
		}
		return "", err
	}
}

// errScopeRefused stops an analytics run at the first 403.
var errScopeRefused = errors.New("finoOS refused the scope")

// userType asks finoOS for a user's type once per process (assumption 37):
// it never changes, and every analytics stream needs it.
func (a *API) userType(ctx context.Context, c *extract.Client, tenant, user string) (string, error) {
	key := tenant + "/" + user
	a.mu.Lock()
	t, ok := a.types[key]
	a.mu.Unlock()
	if ok {
		return t, nil
	}
	var u User
	if err := c.GetJSON(ctx, apiUserPath(user, ""), nil, nil, &u); err != nil {
		return "", err
	}
	t = orDefault(u.Type, personUser) // finoOS's default type
	a.mu.Lock()
	a.types[key] = t
	a.mu.Unlock()
	return t, nil
}

// getModule GETs m's endpoint for user and hands the answer to use while
// it is held (Client.Document), trying its other documented paths when one
// answers 404 (the user exists: userType found it), and keeps the path
// that answered. A body that breaks off is fetched again. use's error is
// returned as is.
func (a *API) getModule(ctx context.Context, c *extract.Client, user string, m Module, use func(doc []byte) error) error {
	a.mu.Lock()
	start := a.paths[m.Stream]
	a.mu.Unlock()
	var err error
	for i := start; i < len(m.Paths); i++ {
		err = c.Document(ctx, http.MethodGet, apiUserPath(user, m.Paths[i]), nil, nil, nil, use)
		var herr *extract.HTTPError
		if errors.As(err, &herr) && herr.Status == http.StatusNotFound && i+1 < len(m.Paths) {
			continue
		}
		if err == nil && i != start {
			a.mu.Lock()
			a.paths[m.Stream] = i
			a.mu.Unlock()
		}
		return err
	}
	return err
}

// moduleWrapper is what a document serving several modules (person income,
// spending, risk) holds beside observedTimespan and the members of all its
// stream's modules, booked or not: scrubbed and bounded, it goes with each
// module's raw (assumption 50).
func moduleWrapper(doc []byte, stream string) []byte {
	known := []string{"observedTimespan"}
	for _, m := range Modules() {
		if m.Stream == stream {
			known = append(known, m.Key)
		}
	}
	wrapper, _ := wrapperOf(doc, known, analyticsScrub) // doc decoded already
	return wrapper
}

// transformModules hands each module its part of doc; a document that is
// rejectModules rejects doc for each of mods when a string in it is over
// the field limit, its first bytes kept; nil when it is within.
func rejectModules(ins *InsightsBuilder, bal *BalancesBuilder, s extract.Subject, mods []Module, doc []byte, c *extract.Client) []extract.Reject {
	t, ok := c.CheckDocument(doc)
	if ok {
		return nil
	}
	rejects := []extract.Reject{}
	for _, m := range mods {
		sink := newInsightSink(ins, bal, s.ID, s.CorrelationID, m, Timespan{})
		sink.reject(t.Raw, t.Reason)
		rejects = append(rejects, sink.rejects...)
	}
	return rejects
}

// no JSON object is one reject per module.
func transformModules(ins *InsightsBuilder, bal *BalancesBuilder, s extract.Subject, mods []Module, doc []byte) []extract.Reject {
	var members map[string]json.RawMessage
	docErr := json.Unmarshal(doc, &members)
	var span Timespan
	if docErr == nil && members["observedTimespan"] != nil {
		if err := json.Unmarshal(members["observedTimespan"], &span); err != nil {
			docErr = fmt.Errorf("observedTimespan: %w", err)
		}
	}
	var wrapper []byte
	if docErr == nil && mods[0].Key != "" {
		wrapper = moduleWrapper(doc, mods[0].Stream)
	}
	var rejects []extract.Reject
	for _, m := range mods {
		sink := newInsightSink(ins, bal, s.ID, s.CorrelationID, m, span)
		switch section := members[m.Key]; {
		case docErr != nil:
			sink.reject(doc, "not a "+m.Stream+" document: "+docErr.Error())
		case m.Key == "":
			m.Transform(sink, doc)
		case section != nil && string(section) != "null":
			m.Transform(sink, extract.WithWrapper(section, wrapper))
		} // a module the client has not booked is absent: nothing to say
		rejects = append(rejects, sink.rejects...)
	}
	return rejects
}
