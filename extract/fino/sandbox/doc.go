// Package sandbox is a fake finoOS API for tests, the demo and benchmarks,
// over deterministic synthetic banking data: authentication, users per
// tenant, analyses with their correlation ids and webhooks,
// categorizations, account detection, account history, contracts, the
// synchronization status and the person and company analytics modules.
// Nothing is stored: every answer is generated from the seed, so any page
// can be produced on demand and Ledger (and Records) tell the truth the
// endpoints serve from. It fakes the provider's documentation, not
// finsync's client: it has its own wire types and imports no extractor.
// Where the docs are silent it follows the fino package's assumptions.
//
// Documented behaviour it reproduces: a TenantID header that is neither
// the client id nor "<client-id>-..." is 403, and a user is invisible (404)
// outside the tenant that created it; errors carry the snake-case status
// text as their type; categorization pages count from 1 with at most 1,000
// items, take from/to, includeTransaction and locale (de, en); account
// history reaches two years back, newest day first; an analysis answers
// 404 on its correlation id until it completed (AnalysisDuration) and
// AnalysisPolls polls were answered, then posts its webhook, retried with
// the same X-Request-Id. Knobs of Options reproduce what a real finoOS may
// do: LocalTimestamps writes timestamps as local RFC 3339 text instead of
// Unix seconds, ExtraFields adds members the docs do not name,
// DeniedScopes answers 403 for an endpoint none of whose modules is
// granted (and leaves out the modules not granted), UnservedPaths answers
// 404 on a module path as a finoOS that knows it only by its other name.
//
// Fault knobs (Options.Faults, see sandboxkit.Knobs): RateLimit,
// ServerError, Latency and Slow on every request; TokenExpiry refuses a
// token for good (401 now and later); Truncated cuts every success body;
// Malformed corrupts the same records every time (Ledger lists them):
// transactions (a non-numeric amount or no transactionId), contracts and
// daily balances (a string amount or balance) and months of the person
// analytics (a string amount); Duplicate repeats the last categorization
// of the page before.
package sandbox
