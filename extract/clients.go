package extract

import "sync"

// Clients are a provider's HTTP clients, one per tenant, made on first use
// by the func given to NewClients. The func decides what they share (a
// provider's one rate.Limiter, a token that belongs to the API user), so
// Stats can speak for the provider as a whole. Safe for concurrent use.
type Clients struct {
	make func(tenant string) *Client

	mu       sync.Mutex
	byTenant map[string]*Client
}

// NewClients returns Clients made by newClient. newClient may return nil
// for a tenant it cannot serve (no credentials); Get then returns nil and
// asks again next time.
func NewClients(newClient func(tenant string) *Client) *Clients {
	return &Clients{make: newClient, byTenant: map[string]*Client{}}
}

// Get returns the tenant's client, making it on first use.
func (cs *Clients) Get(tenant string) *Client {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	c, ok := cs.byTenant[tenant]
	if !ok {
		if c = cs.make(tenant); c != nil {
			cs.byTenant[tenant] = c
		}
	}
	return c
}

// Stats adds up what the tenants' clients did.
func (cs *Clients) Stats() ClientStats {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	var s ClientStats
	for _, c := range cs.byTenant {
		cst := c.Stats()
		s.Requests += cst.Requests
		s.Retries += cst.Retries
		s.Reauths += cst.Reauths
	}
	return s
}
