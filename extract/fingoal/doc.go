// Package fingoal extracts FinGoal Insights API 3.1.2 (docs: the "Insights
// API (3.1.2)" reference) into the common schema, with three streams per
// tenant:
//
//   - fingoal.enrichment: FinGoal only enriches what it is sent. The stream
//     reads the transactions of the other providers not in the ledger
//     enrichment_submissions (extract.Reads: the runner reads the warehouse,
//     the stream never sees ClickHouse), maps them to FinGoal's fields with
//     opaque ids, groups them by user into batches of about 1,000 and
//     submits them to /cleanup (the backlog, first run) or
//     /cleanup/streaming (later runs). Per batch: ledger rows "pending"
//     (before the POST) → POST → the batch_request_id as an active job in
//     etl_state → ledger rows "submitted". Batches are collected with GET
//     /cleanup/{id} (404 = nothing yet) by polling, at once when the
//     enrichment webhook arrives (API.Ready), or by a later run. Enriched
//     transactions land in transactions (provider fingoal, FinGoal's ids);
//     failedTransactions go to etl_rejects with their reason. The view
//     transactions_enriched joins them to the original rows.
//   - fingoal.user_tags (subjects of kind user: the uids the enrichment
//     submitted, registered with source submission): GET /users/{uid} (or
//     /sync with Config.SyncTags) lands current tags, and deleted the tags
//     a user had (current or created) that its read no longer returns
//     (extract.Request.Own reads them back); tag-status guids the webhook
//     recorded as jobs are fetched from /users/tags/{guid} within their 24
//     hours (at once, by a run the webhook triggers) and land as
//     created/deleted tags.
//   - fingoal.finsights: GET /finsights?startAt&endAt (UNIX seconds) from
//     the cursor, one insights fact per field of each recommendation
//     (module finsight).
//
// Exactly once: a transaction with a ledger row is never read again, and
// its row is written before the POST. If the process dies between the POST
// and recording FinGoal's answer (milliseconds), or the answer is lost (a
// 5xx, a cut-off body), its transactions stay "pending": they are not
// resent (FinGoal may have them; its docs say duplicate transaction ids are
// ignored only by the Savings Recommendations API, nothing of enrichment).
// When FinGoal did take the batch, its enrichment webhook names a batch
// etl_state does not know: the receiver adopts it as an active job
// (AdoptedParams), and collecting it marks those rows submitted (reason
// "recovered: ..."). Every enrichment run reports the rows still pending
// (extract.Ledger.Stalled: etl_runs.error and finsync_stalled_records); an
// operator who knows FinGoal lacks them inserts their ledger rows with
// status "unsent" to have them sent again. An adopted batch FinGoal does
// not serve within 24 hours is given up (lost).
//
// # Assumptions where the docs are silent
//
// The sandbox (package fingoal/sandbox) and the extractor share every one
// of these.
//
//  1. Base URL ends in /v3 (dev: https://findmoney-dev.fingoal.com/v3; the
//     production host is not documented). Auth: POST /authentication with
//     JSON client_id/client_secret; expires_in is 86,400 s; the token is
//     renewed 60 s before expiry, or once after a 401.
//  2. Tenants: FinGoal has subtenants (header subtenant-id, documented for
//     POST /transactions only). finsync's tenant is a subtenant id; the
//     default single tenant is the client id itself, sent without the
//     header. Every tenant enriches every other provider's transactions.
//  3. Opaque ids: uid = HMAC-SHA256(IDKey, "user", provider, tenant, user),
//     transactionid and accountid likewise, 128 bits in hex. FinGoal never
//     sees an id of ours or another provider's; the ledger maps them back.
//     IDKey is a secret of at least 16 characters FinGoal does not know
//     (FINSYNC_FINGOAL_ID_KEY, required): keyed with something FinGoal
//     knows, such as the client id, the ids could be recomputed from
//     guessed ones of ours.
//     original_description is transactions.description (the bank's text:
//     purpose or booking text); counterparty names are never sent, as they
//     may be private persons.
//  4. accountType: our transactions carry no account type, so every
//     transaction is sent with Config.AccountType (default "checking").
//     amountnum = |amount|, settlement debit for money out, else credit.
//  5. Batch results: enrichedTransactions items echo uid, transactionid,
//     accountid, amountnum, settlement, date, original_description and add
//     simple_description, merchant_name, category, subcategory, tags
//     (strings); failedTransactions items are {uid, transactionid, reason}.
//     /cleanup/sync answers the same shape (the docs show an object).
//  6. Enriched rows in transactions: user_id = uid, transaction_id =
//     FinGoal's transactionid, account_id = accountid, amount signed by
//     settlement, description = simple_description, merchant =
//     merchant_name, provider_category = category/subcategory, category =
//     the common taxonomy (Category), tags, raw = the item; currency is
//     the source transaction's, which the ledger keeps (FinGoal is sent no
//     currency and answers none; "" for rows sent before the ledger had a
//     currency column). source_job_id is the batch_request_id.
//  7. A request over 1,000 transactions is refused with 400 (the docs say
//     "approximately"); a 400 marks its transactions refused in the ledger.
//  8. GET /users/{userId}: {"user": {"uid", "tags": [...]}, "transactions":
//     []}; 404 for a uid never enriched.
//  9. userTags (GET /users/tags/{guid} and the user-tags webhook) is one
//     user's change: {"uid", "created": [...], "deleted": [...]}.
//  10. GET /finsights filters by the recommendation's creation time,
//     both ends inclusive. finsightDate may carry a time; its date is kept.
//     A finsight without finsight_id is keyed by uniqueId.
//  11. Webhooks: one URL for all four (registered by email; a ?tenant=
//     query parameter names the tenant, default the first), told apart by
//     their fields. Signature: see Verify; the finsights webhook is held to
//     the same rule although the docs only state it for the others.
//  12. Batches have no documented lifetime; a pending batch is polled by
//     every run until it answers (an adopted one for 24 hours).
//  13. Fields finsync does not read are kept in raw. An enriched
//     transaction's or a finsight's own members stay as sent (raw is the
//     item). Members of the object wrapping them — GET /cleanup/{id}
//     beside enrichedTransactions/failedTransactions, GET /finsights and
//     the finsights webhook beside finsights — go into each of its rows'
//     raw under "_wrapper" (extract.WithWrapper): compact, keys sorted, at
//     most 4 KiB, as they repeat in every row; members that do not fit are
//     left out and counted in "_left_out". GET /users/{userId} feeds only
//     user_tags, which has no raw column. Nothing is scrubbed: FinGoal
//     holds no personal identifiers, only opaque ids (3).
package fingoal
