// Package sandbox is a fake finAPI Data Intelligence API for tests, demos
// and benchmarks: the token endpoint and the two segment endpoints (POST
// /segments/{segmentType} creates a job, GET /segments/{segmentType}/{jobId}
// polls and pages its result) over a deterministic synthetic ledger
// (Ledger), from which each segment is computed by its documented
// definition. It fakes the provider's documentation, not finsync's client:
// it has its own wire types and imports no extractor.
//
// Where the docs are silent it follows the assumptions listed in the
// finapi package's doc. Quirks a real server may show are knobs of
// Options: a job answers 404 for ReadyPolls polls (ReadyAfter makes it
// ready on its own and calls its callbackURL); a job older than 14 days
// is forgotten (400 "job not found"; SetToday moves the calendar);
// MaxPageSize caps a page whatever size asks; OmitTotalPages and
// OmitTotalElements leave the totals out; MissingUsers serves fewer users
// than totalElements counts; IgnorePageNumber serves the first page for
// any number; CreationDateShift moves creationDate away from the creation
// day; ExtraUserFields adds undocumented members to every user.
//
// Fault knobs (Options.Faults, see sandboxkit.Knobs): RateLimit,
// ServerError, Latency and Slow on every request; TokenExpiry refuses a
// token for good (401 "invalid or expired access token", the wording of
// every refused token here; tokens expire in no other way); Truncated cuts
// token, job and result bodies; Malformed serves a member's accounts as a
// string ("unavailable"), the same members every time (Malformed lists
// them). Duplicate is not used.
package sandbox
