// Package sandbox is a fake FinGoal Insights API 3.1.2 under /v3 for tests,
// demos and benchmarks: authentication, the three cleanup endpoints
// (/cleanup, /cleanup/streaming and the test endpoint /cleanup/sync), batch
// results, users and their tags, tag updates, finsights, and signed
// webhooks. It fakes the provider's documentation, not finsync's client: it
// has its own wire types and imports no extractor.
//
// Enrichment is deterministic (Enrich: merchant and category from keywords
// of the description); tags are computed from the last 90 days of enriched
// transactions twice a day (at 00:00 and 12:00 UTC, or Tag) or on
// /users/{id}/sync. Documented behaviour it reproduces: the request limits
// (1,000 transactions a cleanup request; 4 users, 16 transactions a user or
// 128 for a single user on /cleanup/sync), 404 "No transactions found"
// until a batch is enriched (Options.ResultDelay, Finish), tag updates kept
// 24 hours, amountFound sent as a number or a string, and webhooks signed
// with the client secret over JSON.stringify(JSON.parse(body)) rather than
// the bytes sent, which are indented (RespellWebhooks spells them as
// another JSON encoder might). ExtraFields adds members the docs do not
// name.
//
// Fault knobs (Options.Faults, see sandboxkit.Knobs): RateLimit,
// ServerError, Latency and Slow on every request; TokenExpiry refuses a
// token for good (401 "Unauthorized", the wording of every refused token
// here; tokens end in no other way but ExpireTokens); Truncated cuts every
// success body; Malformed serves an enriched transaction's tags as a
// string ("unavailable"), the same transactions every time. Duplicate is
// not used.
package sandbox
