package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/finsync/finsync/extract/fimento"
)

// The sandboxes' truth as a client sees it, read over their HTTP APIs with
// plain JSON decoding: nothing of finsync's extractors, transforms, loader
// or views is involved, so the guide's answers can be checked against it.

// truthTx is one transaction as the provider serves it.
type truthTx struct {
	provider, tenant, user string
	day                    string // YYYY-MM-DD
	amount                 decimal.Decimal
	currency               string   // fino: the transaction's (default EUR); Fimento: its process's market's
	descriptive            string   // fino: descriptiveTag; Fimento: its category
	tags                   []string // fino only
	person                 bool     // fino: the user is a person (not a company)
}

func truthGet(t *testing.T, rawURL, token string, header map[string]string, v any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, rawURL, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	for k, val := range header {
		req.Header.Set(k, val)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", rawURL, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v", rawURL, err)
	}
}

func truthToken(t *testing.T, post func() (*http.Response, error)) string {
	t.Helper()
	resp, err := post()
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("token from %s: %d %v", resp.Request.URL, resp.StatusCode, err)
	}
	return tok.AccessToken
}

// finoTruth is every categorization of the sandbox's tenant, with the raw
// transaction.
func finoTruth(t *testing.T, sb *sandbox) []truthTx {
	t.Helper()
	const tenant = "sandbox-client"
	token := truthToken(t, func() (*http.Response, error) {
		return http.PostForm(sb.baseURL("fino")+"/api/auth", url.Values{"grant_type": {"client_credentials"},
			"client_id": {tenant}, "client_secret": {"sandbox-secret"}})
	})
	var out []truthTx
	for _, u := range sb.fino().Users(tenant) {
		var user struct {
			Type string `json:"type"`
		}
		truthGet(t, sb.baseURL("fino")+"/api/users/"+u, token, nil, &user)
		for page, pages := 1, 1; page <= pages; page++ {
			var p struct {
				Categorizations []struct {
					DescriptiveTag string   `json:"descriptiveTag"`
					Tags           []string `json:"tags"`
					Transaction    struct {
						Amount      json.Number `json:"amount"`
						Currency    string      `json:"currency"`
						BookingDate int64       `json:"bookingDate"`
					} `json:"transaction"`
				} `json:"categorizations"`
				TotalPages int `json:"totalPages"`
			}
			truthGet(t, fmt.Sprintf("%s/api/users/%s/categorization?page=%d&size=1000&includeTransaction=true", sb.baseURL("fino"), u, page), token, nil, &p)
			pages = p.TotalPages
			for _, c := range p.Categorizations {
				currency := c.Transaction.Currency
				if currency == "" {
					currency = "EUR" // finoOS: "currency (default EUR)"
				}
				out = append(out, truthTx{provider: "fino", tenant: tenant, user: u,
					day:    time.Unix(c.Transaction.BookingDate, 0).UTC().Format(time.DateOnly),
					amount: decimal.RequireFromString(c.Transaction.Amount.String()), currency: currency, descriptive: c.DescriptiveTag, tags: c.Tags,
					person: user.Type == "person"})
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("the finoOS sandbox served no transaction")
	}
	return out
}

// finoOwners are the names of the persons the finoOS sandbox's account
// detection names as account owners (companies' names are not personal).
func finoOwners(t *testing.T, sb *sandbox) []string {
	t.Helper()
	const tenant = "sandbox-client"
	token := truthToken(t, func() (*http.Response, error) {
		return http.PostForm(sb.baseURL("fino")+"/api/auth", url.Values{"grant_type": {"client_credentials"},
			"client_id": {tenant}, "client_secret": {"sandbox-secret"}})
	})
	seen := map[string]bool{}
	var out []string
	for _, u := range sb.fino().Users(tenant) {
		var user struct {
			Type string `json:"type"`
		}
		if truthGet(t, sb.baseURL("fino")+"/api/users/"+u, token, nil, &user); user.Type != "person" {
			continue
		}
		var d struct {
			AccountsOverview struct {
				AccountsView, CreditsView []struct {
					Owner string `json:"owner"`
				}
			} `json:"accountsOverview"`
		}
		truthGet(t, sb.baseURL("fino")+"/api/users/"+u+"/account-detection", token, nil, &d)
		for _, a := range append(d.AccountsOverview.AccountsView, d.AccountsOverview.CreditsView...) {
			if a.Owner != "" && !seen[a.Owner] {
				seen[a.Owner] = true
				out = append(out, a.Owner)
			}
		}
	}
	return out
}

// fimentoTruth is every transaction of the sandbox's completed processes.
func fimentoTruth(t *testing.T, sb *sandbox) []truthTx {
	t.Helper()
	base := sb.baseURL("fimento")
	token := fimentoToken(t, sb)
	currencies := fimentoCurrencies(t, sb)
	var out []truthTx
	for _, bank := range sb.fimento().PartnerBanks() {
		for _, p := range sb.fimento().Processes(bank) {
			if sb.fimento().Status(bank, p) != fimento.StatusCompleted {
				continue
			}
			for page := 1; ; page++ {
				var body struct {
					Transactions []struct {
						Amount   json.Number `json:"amount"`
						Date     string      `json:"date"`
						Category string      `json:"category"`
					} `json:"transactions"`
				}
				truthGet(t, fmt.Sprintf("%s/insights/%s/transactions?page=%d", base, p, page), token, map[string]string{"partner-bank-id": bank}, &body)
				if len(body.Transactions) == 0 {
					break
				}
				for _, tx := range body.Transactions {
					out = append(out, truthTx{provider: "fimento", tenant: bank, user: p, day: tx.Date[:10],
						amount: decimal.RequireFromString(tx.Amount.String()), currency: currencies[p], descriptive: tx.Category})
				}
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("the Fimento sandbox served no transaction")
	}
	return out
}

func fimentoToken(t *testing.T, sb *sandbox) string {
	t.Helper()
	return truthToken(t, func() (*http.Response, error) {
		return http.Post(sb.baseURL("fimento")+"/auth/login", "application/json", strings.NewReader(`{"name":"sandbox-user","password":"sandbox-password"}`))
	})
}

// fimentoCurrencies is the currency of each completed process: Fimento
// names none, its market does (SE: SEK, FI: EUR).
func fimentoCurrencies(t *testing.T, sb *sandbox) map[string]string {
	t.Helper()
	token := fimentoToken(t, sb)
	out := map[string]string{}
	for _, bank := range sb.fimento().PartnerBanks() {
		for _, p := range sb.fimento().Processes(bank) {
			if sb.fimento().Status(bank, p) != fimento.StatusCompleted {
				continue
			}
			var proc struct {
				Market string `json:"market"`
			}
			truthGet(t, sb.baseURL("fimento")+"/process/"+p, token, map[string]string{"partner-bank-id": bank}, &proc)
			switch proc.Market {
			case "SE":
				out[p] = "SEK"
			case "FI":
				out[p] = "EUR"
			default:
				t.Fatalf("Fimento process %s: market %q", p, proc.Market)
			}
		}
	}
	return out
}

// truthFinsight is one FinGoal savings recommendation.
type truthFinsight struct {
	id, user, category string
	amount             decimal.Decimal
}

// fingoalTruth is every finsight the FinGoal sandbox has made.
func fingoalTruth(t *testing.T, sb *sandbox) []truthFinsight {
	t.Helper()
	id, secret := sb.fingoal().Credentials()
	body, _ := json.Marshal(map[string]string{"client_id": id, "client_secret": secret})
	token := truthToken(t, func() (*http.Response, error) {
		return http.Post(sb.fingoalURL()+"/authentication", "application/json", bytes.NewReader(body))
	})
	var list struct {
		Finsights []struct {
			ID          string          `json:"finsight_id"`
			User        string          `json:"user_id"`
			Category    string          `json:"category"`
			AmountFound json.RawMessage `json:"amountFound"`
		} `json:"finsights"`
	}
	truthGet(t, fmt.Sprintf("%s/finsights?startAt=0&endAt=%d", sb.fingoalURL(), time.Now().Add(time.Hour).Unix()), token, nil, &list)
	var out []truthFinsight
	for _, f := range list.Finsights {
		amount := strings.Trim(string(f.AmountFound), `"`)
		out = append(out, truthFinsight{id: f.ID, user: f.User, category: f.Category, amount: decimal.RequireFromString(amount)})
	}
	return out
}

// finoCategoryOf resolves fino tags to the common taxonomy as the published
// table extract/fino/categories.csv says: the descriptive tag, else the
// first of the tags listed there, else "other".
func finoCategoryOf(t *testing.T) func(descriptive string, tags []string) string {
	t.Helper()
	f, err := os.Open("../../extract/fino/categories.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.Comment = '#'
	rows, err := r.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	byTag := map[string]string{}
	for _, row := range rows[1:] {
		if row[0] == "tag" {
			byTag[row[1]] = row[2]
		}
	}
	return func(descriptive string, tags []string) string {
		if c, ok := byTag[descriptive]; ok {
			return c
		}
		for _, tag := range tags {
			if c, ok := byTag[tag]; ok {
				return c
			}
		}
		return "other"
	}
}

func hasTag(tags []string, tag string) bool {
	for _, t := range tags {
		if t == tag {
			return true
		}
	}
	return false
}

// rowsText renders rows as sorted lines for comparing answers.
func rowsText(rows [][]string) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = strings.Join(r, " | ")
	}
	return out
}

func money(d decimal.Decimal) string { return d.StringFixed(2) }

func itoa(n int) string { return strconv.Itoa(n) }
