// Package sandbox is a fake Fimento Bank Data Insights API for tests,
// demos and benchmarks, over deterministic synthetic processes: login,
// partner banks, processes with their consent flows and test-consent
// endpoint, transactions, insights and process-updated webhooks. It fakes
// the provider's documentation, not finsync's client: it has its own wire
// types and imports no extractor. Where the docs are silent it follows the
// fimento package's doc (its numbered items are cited as "fimento package
// doc, N"); the paths are configurable (Options.Paths).
//
// Each partner bank has ProcessesPerBank processes, by index one of the
// scenarios (ScenarioGood, ScenarioAuthError, ScenarioDenied,
// ScenarioSlow, ScenarioBusiness); a process moves one status per
// Options.Step through the documented sequence, with the bank-level codes
// between consentLinkOpened and the consent answer. A completed process
// serves a ledger of two accounts (Ledger is its truth for tests);
// revoking (Revoke, or the test endpoint) and deleting (Delete) take its
// data away. Documented quirks it reproduces: the test-consent endpoint's
// status in the path with the body {"isApproved": ...} beside it (a body
// that disagrees is refused), psuType "business" in the response whatever
// the request said, consent "null" as a string before an answer, dates as
// local midnight-thirty in Sweden, valid_until in seconds or, with
// ValidUntilMillis, milliseconds, and the documented error body
// {message: [...], error, statusCode}. ExtraFields adds members the docs
// do not name, some of them personal.
//
// Fault knobs (Options.Faults, see sandboxkit.Knobs): RateLimit (429 with
// the message "Too many requests"), ServerError, Latency and Slow on every
// request; TokenExpiry refuses a token for good (401 now and later);
// Truncated cuts every success body; Malformed serves a transaction with a
// non-numeric amount, the same transactions every time (Ledger lists
// them). Duplicate is not used.
package sandbox
