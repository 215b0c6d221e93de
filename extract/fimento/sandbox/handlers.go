package sandbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/finsync/finsync/extract/sandboxkit"
)

// The endpoints, behind the fault injector, the token check and, for
// bank-level endpoints, the partner-bank-id check.

// call is what the middleware learned about a request.
type call struct {
	bank   string
	faults sandboxkit.Draw
}

type handler func(w http.ResponseWriter, r *http.Request, c *call)

func (s *Server) routes() {
	p := s.opts.Paths
	pat := func(method, path string) string {
		path = strings.ReplaceAll(path, "{processId}", "{processID}")
		return method + " " + path
	}
	s.handle(pat("POST", p.Login), false, false, s.login)
	s.handle(pat("GET", p.PartnerBanks), true, false, s.listBanks)
	s.handle(pat("POST", p.PartnerBanks), true, false, s.createBank)
	s.handle(pat("POST", p.Processes), true, true, s.createProcess)
	s.handle(pat("GET", p.Process), true, true, s.getProcess)
	s.handle(pat("DELETE", p.Process), true, true, s.deleteProcess)
	s.handle(pat("POST", p.Consent), true, true, s.consentLink)
	s.handle(pat("POST", p.ConsentLink), true, true, s.consentLink)
	s.handle(pat("POST", p.TestConsent), true, true, s.testConsent)
	s.handle(pat("GET", p.Transactions), true, true, s.transactions)
	s.handle(pat("GET", p.Insights), true, true, s.insights)
	s.handle(pat("POST", p.Webhooks), true, false, s.addWebhook)
	s.mux.HandleFunc("/", sandboxkit.NotFound(writeOneError))
}

// handle registers h behind the fault injection, the token check and, for
// bank-level endpoints, the partner-bank-id check.
func (s *Server) handle(pattern string, authenticated, perBank bool, h handler) {
	serve := func(w http.ResponseWriter, r *http.Request, d sandboxkit.Draw) {
		c := &call{faults: d}
		if perBank {
			c.bank = r.Header.Get(headerPartnerBank)
			if c.bank == "" {
				writeError(w, http.StatusBadRequest, "partner-bank-id is required")
				return
			}
		}
		if id := r.PathValue("processID"); id != "" && s.opts.ProcessesDown.Down(id) {
			w.Header().Set("Retry-After", "0")
			writeError(w, http.StatusServiceUnavailable, "Service unavailable")
			return
		}
		h(w, r, c)
	}
	if !authenticated {
		s.mux.HandleFunc(pattern, s.guard.Open(serve))
		return
	}
	s.mux.HandleFunc(pattern, s.guard.Authorized(func(w http.ResponseWriter, r *http.Request, _ struct{}, d sandboxkit.Draw) {
		serve(w, r, d)
	}))
}

// faultError writes an injected fault in the documented error body, with
// the sandbox's own wording for a rate limit.
func faultError(w http.ResponseWriter, status int, message string) {
	if status == http.StatusTooManyRequests {
		message = "Too many requests"
	}
	writeError(w, status, message)
}

func (s *Server) login(w http.ResponseWriter, r *http.Request, c *call) {
	var l loginBody
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&l); err != nil {
		writeError(w, http.StatusBadRequest, "name is required", "password is required")
		return
	}
	var missing []string
	if l.Name == "" {
		missing = append(missing, "name is required")
	}
	if l.Password == "" {
		missing = append(missing, "password is required")
	}
	if len(missing) > 0 {
		writeError(w, http.StatusBadRequest, missing...)
		return
	}
	if !sandboxkit.SameCredentials(l.Name, l.Password, s.opts.Name, s.opts.Password) {
		writeError(w, http.StatusUnauthorized, "invalid credentials")
		return
	}
	token := sandboxkit.RandomHex(32)
	exp := s.tokens.Issue(token, struct{}{}, s.opts.TokenTTL)
	valid := exp.Unix()
	if s.opts.ValidUntilMillis {
		valid = exp.UnixMilli()
	}
	s.faults.Reply(w, c.faults, http.StatusOK, tokenBody{AccessToken: token, ValidUntil: json.Number(strconv.FormatInt(valid, 10))})
}

func (s *Server) listBanks(w http.ResponseWriter, r *http.Request, c *call) {
	q := r.URL.Query()
	page, err1 := intParam(q.Get(paramPage), 1)
	limit, err2 := intParam(q.Get(paramLimit), 10)
	if err := errors.Join(err1, err2); err != nil {
		writeError(w, http.StatusBadRequest, "page must be a number >= 1", "limit must be a number >= 1")
		return
	}
	s.mu.Lock()
	out := append([]partnerBank{}, sandboxkit.PageOf(s.banks, page, limit)...)
	s.mu.Unlock()
	s.faults.Reply(w, c.faults, http.StatusOK, out)
}

func (s *Server) createBank(w http.ResponseWriter, r *http.Request, c *call) {
	var b partnerBank
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&b); err != nil || b.Name == "" {
		writeError(w, http.StatusBadRequest, "name is required")
		return
	}
	s.mu.Lock()
	s.created++
	b.ID = objectID(s.opts.Seed, "bank/created/"+strconv.Itoa(s.created))
	s.banks = append(s.banks, b)
	s.mu.Unlock()
	s.faults.Reply(w, c.faults, http.StatusCreated, b)
}

// createProcess starts a process: the bad demo SSN ends in authError, any
// other follows the good path from now.
func (s *Server) createProcess(w http.ResponseWriter, r *http.Request, c *call) {
	var np newProcess
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&np); err != nil {
		writeError(w, http.StatusBadRequest, "invalid body")
		return
	}
	var problems []string
	if np.Market != "SE" && np.Market != "FI" {
		problems = append(problems, "market must be one of the following values: SE, FI")
	}
	if np.DataCollectionType != "transaction-categorisation" && np.DataCollectionType != "bank-account-verification" {
		problems = append(problems, "dataCollectionType must be one of the following values: transaction-categorisation, bank-account-verification")
	}
	if len(problems) > 0 {
		writeError(w, http.StatusBadRequest, problems...)
		return
	}
	s.mu.Lock()
	if !s.knownBank(c.bank) {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, "partner bank not found")
		return
	}
	s.created++
	p := &sbProcess{id: objectID(s.opts.Seed, "process/created/"+strconv.Itoa(s.created)), bank: c.bank, market: np.Market,
		psuType: "private", ssn: np.SocialSecurityNumber, companyID: np.CompanyID, first: np.FirstName, last: np.LastName,
		createdAt: s.opts.Now().UTC(), path: goodPath}
	if np.CompanyID != "" {
		p.psuType = "business" // the response's value, not the request's enum (fimento doc, 7)
	}
	if np.SocialSecurityNumber == BadSSN {
		p.path = authErrorPath
	}
	s.addProcess(p)
	key := p.bank + "/" + p.id
	s.notified[key] = s.state(p, s.opts.Now())
	proc := s.render(p, s.opts.Now())
	s.mu.Unlock()
	s.faults.Reply(w, c.faults, http.StatusCreated, proc)
}

func (s *Server) knownBank(id string) bool {
	for _, b := range s.banks {
		if b.ID == id {
			return true
		}
	}
	return false
}

// processOf finds the path's process in the request's partner bank or
// answers 404.
func (s *Server) processOf(w http.ResponseWriter, r *http.Request, c *call) (*sbProcess, bool) {
	p := s.processes[c.bank+"/"+r.PathValue("processID")]
	if p == nil || p.deleted || p.hidden {
		writeError(w, http.StatusNotFound, "process not found")
		return nil, false
	}
	return p, true
}

func (s *Server) getProcess(w http.ResponseWriter, r *http.Request, c *call) {
	s.mu.Lock()
	p, ok := s.processOf(w, r, c)
	var proc processDoc
	if ok {
		proc = s.render(p, s.opts.Now())
	}
	s.mu.Unlock()
	if ok {
		body := sandboxkit.MustJSON(proc)
		if s.opts.ExtraFields {
			body = withMembers(body, "customerSegment", "retail",
				"kyc", map[string]any{"level": 2, "ssn": p.ssn, "checkedName": p.first + " " + p.last})
		}
		s.faults.WriteBodyStatus(w, c.faults, http.StatusOK, body)
	}
}

func (s *Server) deleteProcess(w http.ResponseWriter, r *http.Request, c *call) {
	s.mu.Lock()
	p, ok := s.processOf(w, r, c)
	if ok {
		p.deleted = true
	}
	s.mu.Unlock()
	if ok {
		w.WriteHeader(http.StatusNoContent)
	}
}

func (s *Server) consentLink(w http.ResponseWriter, r *http.Request, c *call) {
	s.mu.Lock()
	p, ok := s.processOf(w, r, c)
	s.mu.Unlock()
	if ok {
		s.faults.Reply(w, c.faults, http.StatusCreated, map[string]string{"consent-link": "https://consent.sandbox.fimento.invalid/" + p.id + "/" + sandboxkit.RandomHex(8)})
	}
}

// testConsent approves or revokes a consent flow. The docs list a status
// (approved|revoked) but show the body {"isApproved": true} (fimento package doc, 18):
// the status in the path decides; a body, if sent, must agree.
func (s *Server) testConsent(w http.ResponseWriter, r *http.Request, c *call) {
	status := consentState(r.PathValue("status"))
	if status != consentApproved && status != consentRevoked {
		writeError(w, http.StatusBadRequest, "status must be one of the following values: approved, revoked")
		return
	}
	var body struct {
		IsApproved *bool `json:"isApproved"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil && !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, "invalid body")
		return
	}
	if body.IsApproved != nil && *body.IsApproved != (status == consentApproved) {
		writeError(w, http.StatusBadRequest, "status and isApproved disagree")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.processOf(w, r, c)
	if !ok {
		return
	}
	now := s.opts.Now()
	if status == consentRevoked {
		if p.revokedAt.IsZero() {
			p.revokedAt = now.UTC()
		}
	} else {
		code := s.render(p, now).ConsentFlowStatus.Current.Code
		if p.path[len(p.path)-1].code != statusCompleted || !p.revokedAt.IsZero() {
			writeError(w, http.StatusConflict, "the consent flow cannot be approved in status "+code)
			return
		}
		p.completedNow = true
	}
	sandboxkit.WriteJSON(w, http.StatusOK, map[string]bool{"isApproved": status == consentApproved})
}

func (s *Server) transactions(w http.ResponseWriter, r *http.Request, c *call) {
	page, err := intParam(r.URL.Query().Get(paramPage), 0)
	if err != nil || page < 1 {
		writeError(w, http.StatusBadRequest, "page must be a number >= 1")
		return
	}
	s.mu.Lock()
	p, ok := s.processOf(w, r, c)
	if ok && !s.hasData(p, s.opts.Now()) {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, "no transactions for this process")
		return
	}
	var items [][]byte
	if ok {
		for _, t := range sandboxkit.PageOf(p.txns, page, s.opts.PageSize) {
			items = append(items, s.encodeTxn(p, t))
		}
	}
	s.mu.Unlock()
	if ok {
		tail := "}"
		if s.opts.ExtraFields {
			tail = `,"nextPage":` + strconv.Itoa(page+1) + "}"
		}
		s.faults.WriteBodyStatus(w, c.faults, http.StatusOK, sandboxkit.ListJSON(`{"transactions":`, items, tail))
	}
}

// encodeTxn encodes one transaction; a malformed one has an amount that is
// no number. Dates are local midnight-thirty in Sweden (fimento package doc, 12).
func (s *Server) encodeTxn(p *sbProcess, t sbTxn) []byte {
	acc := p.accounts[t.account]
	tx := transaction{ID: t.id, Amount: json.Number(fixed2(t.amount)), Date: t.day.Format("2006-01-02") + "T00:30:00+01:00",
		Description: t.text, AccountID: objectID(s.opts.Seed, "account/"+p.id+"/"+acc.number), Category: t.category,
		CBankID: objectID(s.opts.Seed, "cbank/"+acc.bank)}
	if s.faults.Malform("tx/" + t.id) {
		return sandboxkit.MustJSON(struct {
			transaction
			Amount string `json:"amount"`
		}{tx, "abc"})
	}
	if s.opts.ExtraFields {
		return withMembers(sandboxkit.MustJSON(tx), "merchantLogo", "https://logos.fimento.invalid/"+t.category+".png")
	}
	return sandboxkit.MustJSON(tx)
}

func (s *Server) insights(w http.ResponseWriter, r *http.Request, c *call) {
	s.mu.Lock()
	p, ok := s.processOf(w, r, c)
	if ok && !s.hasData(p, s.opts.Now()) {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, "no insights for this process")
		return
	}
	var body []byte
	if ok {
		body = insightsDoc(p)
		if s.opts.ExtraFields {
			body = extraInsights(body, p)
		}
		if n := s.opts.Faults.HugeField; n > 0 {
			body = withMembers(body, "note", strings.Repeat("x", int(n)))
		}
	}
	s.mu.Unlock()
	if ok {
		s.faults.WriteBodyStatus(w, c.faults, http.StatusOK, body)
	}
}

// extraInsights is the insights document doc with ExtraFields' members.
func extraInsights(doc []byte, p *sbProcess) []byte {
	var m map[string]json.RawMessage
	var accounts []json.RawMessage
	if json.Unmarshal(doc, &m) != nil || json.Unmarshal(m["accountsInfo"], &accounts) != nil {
		panic("fimento sandbox: insights do not decode")
	}
	for i, a := range accounts {
		accounts[i] = withMembers(a, "accountLogo", "https://logos.fimento.invalid/account"+strconv.Itoa(i)+".png")
	}
	m["accountsInfo"] = sandboxkit.MustJSON(accounts)
	return withMembers(sandboxkit.MustJSON(m), "riskScore", json.Number("0.125"),
		"merchantSummary", map[string]any{"topMerchant": "ICA Maxi", "note": "prepared for " + p.first + " " + p.last,
			"contact": map[string]string{"firstName": p.first, "lastName": p.last}})
}

// withMembers is the JSON object obj, which has members, with the members
// key, value, ... added.
func withMembers(obj []byte, kv ...any) []byte {
	out := bytes.TrimSuffix(bytes.Clone(obj), []byte("}"))
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(append(append(out, ','), sandboxkit.MustJSON(kv[i])...), ':')
		out = append(out, sandboxkit.MustJSON(kv[i+1])...)
	}
	return append(out, '}')
}

func (s *Server) addWebhook(w http.ResponseWriter, r *http.Request, c *call) {
	var body webhookURL
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil || body.WebhookURL == "" {
		writeError(w, http.StatusBadRequest, "webhookUrl is required")
		return
	}
	if !strings.HasPrefix(body.WebhookURL, "http://") && !strings.HasPrefix(body.WebhookURL, "https://") {
		writeError(w, http.StatusBadRequest, "webhookUrl must be a URL address")
		return
	}
	s.mu.Lock()
	known := false
	for _, u := range s.webhooks {
		known = known || u == body.WebhookURL
	}
	if !known {
		s.webhooks = append(s.webhooks, body.WebhookURL)
	}
	s.mu.Unlock()
	sandboxkit.WriteJSON(w, http.StatusCreated, body)
}

// writeError writes the documented error body.
func writeError(w http.ResponseWriter, status int, messages ...string) {
	sandboxkit.WriteJSON(w, status, apiError{Message: messages, Error: http.StatusText(status), StatusCode: status})
}

// writeOneError is writeError with one message, a sandboxkit.ErrorWriter.
func writeOneError(w http.ResponseWriter, status int, message string) {
	writeError(w, status, message)
}

func intParam(s string, def int) (int, error) {
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%q is not a number >= 1", s)
	}
	return n, nil
}
