package extract

import (
	"context"
	"fmt"
	"net/http"
	"sync"
)

// Clients are a provider's HTTP clients, one per tenant, made on first use
// by the func given to NewClients. The func decides what they share (a
// provider's one rate.Limiter, a token that belongs to the API user), so
// Stats can speak for the provider as a whole. Safe for concurrent use.
type Clients struct {
	make func(tenant string) *Client
	// auth, if set, is each tenant's token cache (NewTenantClients).
	auth func(tenant string) (*TokenCache, bool)

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

// Authenticate gets the tenant's token, from the cache or the provider:
// whether its credentials work (`finsync validate -connect`).
func (cs *Clients) Authenticate(ctx context.Context, tenant string) error {
	if cs.auth == nil {
		return nil
	}
	tc, ok := cs.auth(tenant)
	if !ok {
		return fmt.Errorf("no credentials for tenant %q", tenant)
	}
	_, err := tc.Get(ctx)
	return err
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

// TenantOptions says how NewTenantClients makes a provider's client for
// each of its tenants.
type TenantOptions struct {
	// Client is what every tenant's client shares: base URL, HTTP client,
	// logger and, above all, the Limiter of the provider's one rate.
	Client ClientOptions
	// Header, if set, is the request header naming the tenant (finoOS
	// TenantID, Fimento partner-bank-id, FinGoal subtenant-id). It is not
	// sent for tenant Own: the client's own tenant, or "" for calls of none.
	Header, Own string
	// Auth returns the tenant's token cache, and false for a tenant the
	// provider cannot serve (no credentials): Get then returns nil.
	Auth func(tenant string) (*TokenCache, bool)
}

// NewTenantClients returns a provider's Clients made as o says, so that
// the providers differ only in what o holds.
func NewTenantClients(o TenantOptions) *Clients {
	cs := NewClients(func(tenant string) *Client {
		auth, ok := o.Auth(tenant)
		if !ok {
			return nil
		}
		opts := o.Client
		opts.Auth = auth
		if o.Header != "" && tenant != o.Own {
			opts.Header = o.Client.Header.Clone()
			if opts.Header == nil {
				opts.Header = http.Header{}
			}
			opts.Header.Set(o.Header, tenant)
		}
		return NewClient(opts)
	})
	cs.auth = o.Auth
	return cs
}
