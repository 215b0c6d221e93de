// Package fimento extracts from Fimento's Bank Data Insights API: a partner
// bank (the tenant) starts a data collection process for a customer, the
// customer consents at their banks, and Fimento categorises the fetched
// transactions and computes insights. finsync's subjects are the
// processes; the streams are fimento.transactions (categorised
// transactions) and fimento.insights (daily balances, accounts and the
// insight values).
//
// The package holds the API types (api.go), the streams (streams.go), the
// transforms (transform.go), personal-data handling (pii.go) and the
// webhook receiver (webhook.go). Its sandbox, a fake Fimento over
// deterministic synthetic processes with fault knobs, is package
// fimento/sandbox.
//
// # Assumptions where the docs are silent
//
// The sandbox and the extractor share these; a real API difference is fixed
// here and in DefaultPaths, and in the sandbox's.
//
//  1. Paths: the docs give only POST /process/:processId/consent and .../consent-link. The others
//     are DefaultPaths: POST /auth/login, GET|POST /partner-bank, POST /process,
//     GET|DELETE /process/{processId}, POST /process/{processId}/consent/{status} (test approve/revoke),
//     GET /insights/{processId}/transactions?page=N, GET /insights/{processId}, POST /webhook.
//     Operators override any of them (FINSYNC_FIMENTO_PATHS=name=/path,...; ParsePaths).
//  2. partner-bank-id is a request header, sent on every call of a partner bank, the categorised
//     transactions included (the docs list it there for neither path nor query).
//  3. reference-id (for the AI features) is not sent: finsync reads data, it does not use the AI.
//  4. valid_until is a Unix epoch time. The docs give no unit: a value above 1e11 is milliseconds,
//     any other seconds (1e11 s is the year 5138, 1e11 ms is 1973). A missing, zero or past value
//     keeps the token until a 401; a 401 always logs in again once.
//  5. Errors have the documented body {"message":[...],"error","statusCode"}; a bad login is 401, an
//     unknown process (or one of another partner bank) 404, a rate limit 429 with Retry-After in
//     seconds. Rate limits are undocumented: the client sends at most RateLimit (10) requests/s.
//  6. consent is null, "approved" or "revoked"; the string "null" of the samples means null too
//     (type Consent). It is read at the process and at consentFlowStatus.
//  7. psuType is any string: the request enum is transaction-categorisation|bank-account-verification,
//     the response example says "business"; finsync stores it as the insight psu_type.
//  8. Statuses move in the documented order (the bank-level codes between consentLinkOpened and
//     the consent answer, which may come any time after fetchingTransactionsStarted); authError may
//     end the process at any point. consentFlowStatus.current is the process's state.
//  9. The customer's data is gone when consentFlowStatus.current is customerDeniedConsent, or consent
//     (either one) is "revoked", or the process answers 404 twice a grace period apart (one 404 can be a
//     load balancer or maintenance page: the first quarantines the process, rows kept, see
//     schedules.Runner.QuarantineGrace; a 404 for every process of a run is a configuration error that
//     touches nothing). finsync then deletes every row of the
//     process (extract.Registry.Forget), and FinGoal's copies of them (through the enrichment ledger), marks it
//     revoked and never asks Fimento for it again. A process that
//     denied once and later completes a new consent flow stays revoked in finsync: an operator
//     reactivates it by hand. A provider's streams may run at once (the daemon's provider.fimento
//     limit is 2), so a run can load rows of a process it read before another stream's run found
//     it revoked and deleted its rows: every run, once its records are loaded, deletes the rows of
//     every revoked subject of its tenant that still has some (Runner.sweep), and the revoking run
//     does so after marking the subject, so whichever run loads last removes them.
//  10. Only completed processes are extracted. Any other state is a skip with its code, description,
//     time and (authError) the bank's message, in subjects.status_detail and etl_runs.error; it costs
//     one GET of the process per run, never a retry loop.
//  11. Amounts are signed, negative = money out (the insights split negativeTransactions and
//     positiveTransactions, the docs' example shows 0), with at most 4 decimals.
//  12. A transaction's date is an RFC 3339 instant; its booking day is the calendar day written in
//     it, in its own offset (Swedish banks book in local time: 2026-01-25T00:30:00+01:00 is the 25th,
//     not the 24th; transform.ParseDay, shared with finoOS). Currency: no field names one; SE processes are SEK, FI processes EUR.
//  13. transactionGraph[].date is YYYY-MM-DD (RFC 3339 accepted); info.balance is the customer's
//     end-of-day balance over all accounts of the process, so it lands in account_balances with
//     account_id "*" and granularity "day". negativeSum/positiveSum become insights per day;
//     negative/positiveTransactions repeat the transactions and are not stored.
//  14. Categorised transactions are {"transactions":[...]}, pages from 1 in a stable order, until an
//     empty page (no size, no totals). A page that repeats the one before, or more than MaxPages, is
//     an error: a server ignoring page would otherwise loop forever. They are a snapshot: no cursor.
//  15. accountsInfo has no id: account_id is "acct-" + the first 64 bits of SHA-256 over bank and
//     accountNumber (AccountID). It is not the transactions' accountId, which Fimento never relates
//     to an accountsInfo item. type is free text, normalized by keywords (accountType).
//  16. totalBalance, categorisation and computationAutomation have no documented shape: each is an
//     insights row with the scrubbed object as raw, plus one row per scalar inside (dotted path as
//     metric). fetchedAtInterval is observed_from/observed_to of every insights row of the process.
//  17. The add-webhook call takes only {"webhookUrl"} (no partner-bank-id) and adding a URL again is
//     harmless. A process-updated webhook is a POST whose body is the process as get-process returns
//     it (or at least its _id/processId and partnerBank); it carries no signature, so the receiver
//     only accepts configured partner banks and well-formed ids.
//  18. The test approve/revoke call takes the status in the path; the docs' body {"isApproved": true}
//     is sent too, and the sandbox refuses the two if they disagree.
//  19. user_id and source_job_id of every row are the processId (a process is one customer's data
//     collection); insight_id is the processId too.
//  20. Personal data: socialSecurityNumber, companyId, firstName and lastName (and "ssn") are removed
//     at any depth from every raw payload, rejects included, and never logged (the webhook body is
//     not logged either). Text finsync keeps (transaction descriptions, account names, status
//     messages, raw) is redacted of the process's own identifiers, so "Swish Astrid Lindqvist"
//     lands as "Swish [redacted] [redacted]"; descriptions are otherwise kept, they are the bank's
//     transaction texts. The only form of a person is PersonRef, an HMAC-SHA256 under
//     FINSYNC_FIMENTO_HASH_KEY (insights metric person_ref or company_ref).
//  21. Categories: the docs show only "income"; categories.go maps plausible names to the common
//     taxonomy of fino's categories.csv, anything else to "other"; provider_category keeps Fimento's.
//  22. Fields finsync does not read are kept in raw. A transaction's or an accountsInfo item's own
//     members stay in its raw (the item, scrubbed and redacted). Members of the process and of the
//     insights document that no field names (a customer segment, a score) become insights rows like
//     16's objects: metric "process.<name>" or "insights.<name>", raw the value scrubbed and
//     redacted as any raw (20), scalars also in value/value_text, objects also flattened. They land
//     once, not in every account's raw; together at most 64 KiB per document, members beyond left
//     out and counted in the row "insights._left_out" or "process._left_out". A transactions page's
//     members beside "transactions" are paging, not data of a transaction, and are not kept.
package fimento
