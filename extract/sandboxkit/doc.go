// Package sandboxkit is what the provider sandboxes share: the fault
// injector, bearer tokens, the guard that puts handlers behind both, JSON
// replies, listing helpers, webhook delivery and the background work that
// ends with Close.
//
// The injector adds the failures real providers show and finsync must
// survive: rate limits with Retry-After, server errors, latency, tokens
// expiring early, truncated bodies, duplicated and malformed records. Every
// sandbox draws from one Injector, so a client that sends the same requests
// in the same order meets the same faults.
//
// What the kit does not decide is what a client sees of a provider: each
// sandbox passes its own error writer (the bodies follow each provider's
// docs) and its own wording.
package sandboxkit
