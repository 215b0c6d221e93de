// Package fino extracts from finoOS, fino's open-banking and analytics
// platform: a client's users (persons or companies, per tenant) connect or
// upload bank data, finoOS analyses it in runs identified by a correlation
// id, and modules serve the results per user: categorized transactions,
// detected accounts, daily account balances, contracts and person/company
// analyses. Auth is OAuth2 client credentials (POST /api/auth, tokens of
// about 300 s); completion is signalled by webhook or by polling.
//
// The package holds the API types (api.go). Its sandbox, a fake finoOS
// over deterministic synthetic data with fault knobs for tests, the demo
// and benchmarks, is package fino/sandbox. Amounts are decoded as
// json.Number so the provider's decimal text reaches the warehouse without
// float rounding.
//
// # Assumptions where the docs are silent
//
// The sandbox and the extractor share these; a real API difference is fixed
// here and in the constants of api.go, and in the sandbox's. Sources are
// the docs' page names.
//
//  1. Paths: base URL without /api (e.g. https://os.test.fino.cloud) plus
//     /api/...; Quick Start calls .../api the base yet lists /api/auth and curls .../api/auth.
//  2. Auth answers only the snake_case fields of Quick Start (access_token, expires_in, ...),
//     not "accessToken" of Authentication; no refresh token: re-authenticate on 401 or near expiry.
//  3. A TenantID header that is neither the client id nor "<client-id>-..." gets 403
//     {"type":"forbidden"} (Tenancy says "ensure that it is prefixed", not what happens otherwise).
//  4. A user asked for in another tenant is 404 (Tenancy: "cannot be accessed ... and vice versa").
//  5. Error "type" is the snake_case status text (unauthorized, not_found, too_many_requests, ...);
//     Errors documents only "forbidden". 429 carries Retry-After in seconds (Errors lists only 429).
//  6. POST /api/users answers 201 with the user and its userId (Quick Start); customUserID is the
//     request field the webhook docs name. DELETE /api/users/{user-id} (op users-delete-user) answers 204.
//  7. POST /api/users/{user-id}/trigger-analysis answers 202 without body; only the
//     Finoos-Correlation-Id header matters (Analysis Lifecycle).
//  8. Correlation polling sends the id as header Finoos-Correlation-Id (the response header's name)
//     or query correlationId (Quick Start: "as a query parameter or header"); the extractor uses the header.
//  9. Only the correlation endpoint's status counts: 200 done, 404 running, cancelled or unknown;
//     its 200 body (CorrelationStatus) is ours. A 404 that lasts needs a deadline.
//  10. GET /api/users/{user-id}/categorization is paged by page (1-based) and size (1..1000,
//     default 100) into {"categorizations":[...],"page","size","totalPages","totalElements"}
//     (Categorization shows one item, no list): the Spring-style page most Java APIs return.
//     Decoders also take a bare JSON array as one page holding everything.
//     Paging (here and in 49) ends at totalPages, at the first empty page, and at the pages
//     totalElements fills plus one (extract.MorePages); a totalPages beyond that is recorded as
//     one reject per user (categorization) or a warning (synchronization status).
//  11. Categorization is ordered by booking date, then account, the same on every call, so page
//     numbers address the same records throughout a run (the docs state no order).
//  12. includeTransaction=true adds the raw "transaction", locale=de|en adds "localizedTag"
//     (Categorization: "optionally the raw transaction data can be included", "(if requested)").
//  13. Optional from/to (YYYY-MM-DD, both inclusive) filter categorization by booking date and
//     account history by date. The docs name no filter, so the extractor filters again itself.
//  14. Paths of the modules without an operation anchor are named after their scopes, as
//     /categorization is after scope categorization: /api/users/{user-id}/contracts,
//     /api/users/{user-id}/account-history, /api/users/{user-id}/account-detection (Scopes).
//  15. Contracts come as {"contracts":[...]}, not paged (Contracts shows one); decoders also take
//     a bare array. transactions[] are oldest first.
//  16. contractPartner has the fields of paymentPartner (name, iban, bic, creditorId); Contracts
//     shows only "{ // detailed information about the contract partner }".
//  17. Contract duration is the interval's length in days (the example pairs QUARTERLY with 90);
//     interval is MONTHLY, QUARTERLY, HALF_YEARLY or YEARLY; amountConsistency FIX or VARIABLE.
//  18. Account history is not paged: per account one end-of-day balance per day from its first day
//     of data, at most 730 days up to today, newest first (Account History: "past 2 years").
//  19. Incremental history: the cursor is the newest date loaded per user; the next run asks
//     from=that date, re-reading it because today's balance still changes.
//  20. Incremental categorization: the cursor is the last day a run read; the next run asks every
//     user of the registry for from = cursor - LookbackDays (default 3, for late bookings) to the
//     last day of its window. A first run reads HistoryDays (default 730) back, and so does a run
//     for a user who entered the registry on or after the cursor's day (it was never read).
//     Account history uses the same rule without the lookback.
//  21. Amounts are JSON numbers with at most two decimals (examples -55.08, 7481.06, 150), printed
//     as a float serializer prints them (150, 12.5).
//  22. bookingDate/valueDate are Unix seconds (Meaning of data fields: "Unix timestamp", zone unsaid)
//     or RFC 3339 text with an offset; creationDate is RFC 3339 with offset as in its example. A Date
//     column takes the date written in a timestamp, in its own offset, never converted to UTC: a
//     German bank's midnight "2026-11-03T00:00:00+01:00" (23:00 UTC the day before) is 2026-11-03,
//     and "2026-11-03T23:30:00-01:00" too (transform.ParseDay, the rule of Fimento's dates). So are
//     the dates the docs show as YYYY-MM-DD (daily balances, nextBookingDate, nextBookingRange,
//     observedTimespan), should a timestamp come there; YYYY-MM-DD stays as written. Unix seconds
//     carry no offset: their day is the UTC day, so a zone's midnight east of UTC sent as a number
//     lands on the day before, and nothing in the number tells. from/to and the cursors stay days
//     (13, 19, 20): finoOS filters by the booking day as written, and the cursor is the UTC day a
//     run's window ends on; where a local day east of UTC has already begun, its bookings come with
//     the next run, which reads from before the cursor day on.
//  23. merchantCategoryCode is a string of four digits (leading zeros kept); transactionCode an
//     integer (Meaning of data fields).
//  24. Account overdraft is {"amount": number, "available": bool}; the field table swaps the types.
//  25. Account detection: creditorId sits where the example has it, inside additionalAnalysesInfo
//     in accountsView but at the account in creditsView; isUserAdded follows the example (true =
//     connected by the user), not the prose, which says the opposite.
//  26. The webhook for a finished analysis is a POST with event "categorization", data
//     {"status":"COMPLETED"}, correlationTimestamp RFC 3339 (Webhooks: the event list is empty).
//     Receivers treat any event with userID and correlationID as "analysis done".
//  27. Webhook retries ("a certain number of failed attempts") keep the X-Request-Id, so a
//     receiver can drop repeats; the sandbox tries 3 times.
//  28. Analysis results can be read at any time; the sandbox does not model "no results before
//     the first analysis", and a user created over the API gets synthetic data at once.
//  29. Account history names no currency; its balances are stored as EUR (finoOS serves German
//     banks). Accounts and transactions without a currency are EUR too ("currency (default EUR)").
//  30. Common categories (categories.csv): the descriptiveTag if mapped, else the first mapped tag
//     of tags[] (most specific first), else "other"; provider_category keeps descriptiveTag (or
//     tags[0]). "spending" and "living" are too broad to map on their own.
//  31. A categorization without its raw transaction is rejected (the amount is unknown), and so is
//     one whose transaction.transactionId differs from its own, or a bookingDate of 0.
//  32. Dates outside ClickHouse's Date range (1970-01-01..2149-06-06) are rejected rather than
//     wrapped; that also catches milliseconds sent where seconds belong.
//  33. Amounts: more than 4 significant decimals or 14 integer digits are rejected; exponent form
//     and trailing zeros are accepted.
//  34. A detected account with an empty accountId (the docs' creditsView example) is keyed
//     "creditor:<creditorId>"; without a creditorId either it is rejected. A creditsView account
//     whose type names no kind is a loan; overdraft_limit is overdraft.amount whatever available says.
//  35. Raw payloads are scrubbed before they land: transactions drop paymentPartner.name,
//     differentCreditor and differentDebitor; accounts drop owner, transactions and standingOrders.
//     Counterparty and contract-partner names stay in their columns (see the README's open points).
//  36. Analytics paths follow the one documented (/analysis/person/income): person
//     /api/users/{user-id}/analysis/person/{income,spending,risk,household-budget,adult-check,
//     living-situation}, company .../analysis/company/<the company pages' relative paths>, cockpits
//     .../cockpits/{person,company}. Quick Start's .../company/cashflow is taken as another name of
//     cash-transactions: the extractor asks cash-transactions and, on a 404 for a user that exists,
//     cashflow, then keeps the path that answered. The sandbox serves both.
//  37. A user's type comes from GET /api/users/{user-id} (the user as POST /api/users answers it),
//     asked once per process and cached: it never changes. Person endpoints are asked only for
//     persons, company endpoints only for companies; "" counts as person (the create default).
//     observedTimespan is from/to in company modules and since/until in the adult check: both decode
//     into one Timespan.
//  38. Person income and spending answer {"observedTimespan", "<module>": {...}} with one member per
//     booked module, named as its scope's last part in camel case (salary, childBenefit,
//     selfEmployment, creditCard, ...), each {available, average, median, monthlyOverview[{month,
//     amount, count, transactionIDs}]} over every month observed, oldest first; amounts are signed
//     (spending negative); average and median are over the complete months. Credit-card spending is
//     the card billings on the current account; "other" leaves out the card account's own bookings.
//  39. Person risk uses the same member shape for backDebit, garnishment, collection and gambling
//     (count and the amounts' sum per month); overdraftAmount is {monthlyOverview[{month, days,
//     overdrafts[{date, amount}]}]}: days whose end-of-day balance of a current account is below 0.
//  40. Household budget is {observedTimespan, income{salary, pension, childBenefit,
//     parentalAllowance, rental, alimony, otherRecurring, otherNonRecurring, total}, spending{rent,
//     credits, insurances, investments, creditCards, otherRecurring, otherNonRecurring, total},
//     balance}: averages per complete month; balance = income.total + spending.total.
//  41. Adult check is {decision, indicators[{indicator, strength (VERY_STRONG, STRONG, MEDIUM,
//     NEGATIVE), transactionIDs}], observedTimespan{since, until}}; the page lists the indicators by
//     strength but names no keys.
//  42. Living situation is {observedTimespan, children, motorVehicle, property, housingRent}, each
//     {detected, monthlyAmount, transactionIDs}; a part not analysed is absent.
//  43. A company "sum, count, and transaction IDs" is {sum, count, transactionIDs}; account
//     information is {accountId, iban, type, currency}; monthly lists are newest first except top
//     categories (ascending), as the pages say. Staff sources.contracts and contractSummary are
//     counted, not exploded (their schema is undocumented).
//  44. Company risk's overdraftDays counts days below the agreed overdraft (the page: "below the
//     account overdraw limit"); company-spending-other has no page or path and is not read.
//  45. Scope spellings: the scopes table's person-spending-credit-card and person-risk-back-debit are
//     the module names (insights.module); the module pages' person-spending-creditCard and
//     person-risk-backDebit are accepted wherever a scope is configured. person-income-loan (module
//     page only) and person-living-situation (missing from the table) are modules like the others.
//     The cockpits share scope "cockpits"; their modules are cockpit-person and cockpit-company.
//  46. A cockpit as JSON is {cockpitId, type, createdAt, observedTimespan, sections{<module>: its
//     module's document}}: the sections are the tenant's choice (Cockpits > Configuration), so the
//     extractor flattens them generically: metric = the dotted path, an object with month or date
//     sets the period.
//  47. A module the client lacks answers 403 {"type":"forbidden"}; an endpoint serving several
//     modules (income, spending, risk) leaves out the ones not booked ("one endpoint per component
//     delivers all booked modules") and answers 403 only when none is booked. A 403 ends that
//     stream's run for the tenant as a success with one etl_rejects row naming the modules.
//  48. Analytics are snapshots: no cursor, no from/to; every run reads the whole result again and
//     ReplacingMergeTree keeps the newest. Liquidity's month-level balances go to account_balances
//     with granularity month_end, month_min and month_max (daily history is "day"), dated the
//     month's last day, also for the current month (replaced once the month is over).
//  49. Get Synchronization Status Paginated is GET /api/banking/synchronization-status, paged like
//     categorization into {"synchronizationStatuses":[{bankLoginId, userId, status, active,
//     lastSynchronization (RFC 3339)}], "page", "size", "totalPages", "totalElements"} (Consent
//     Management names the fields, not the path or envelope). fino.transactions and
//     fino.account_history write cursors "DAY synced-before START", START being when the run began;
//     the next run skips a user all of whose logins last synced more than an hour (syncMargin)
//     before START: new bank data arrives only with a sync ("To verify that synchronization has
//     been completed ... check the lastSynchronization"), and the hour covers the analysis after a
//     sync and clock skew. Users with no login in the list (uploaded data), users never read, old
//     cursors without START, and a tenant whose status cannot be read (403, 404, errors) are read
//     as before. A re-analysis without a new sync is not seen until the user syncs again, and what
//     it categorized with a booking day before the cursor less the lookback (20) not even then:
//     incremental runs miss it for good. So this is not assumed to be rare: a reconciliation
//     (the schedules file's reconcile, weekly for fino.transactions and fino.account_history;
//     `finsync once -reconcile`) reads every user, skipping none, from the earlier of the cursor
//     less the lookback and reconcile_lookback (default 35 days) before its window's end, and
//     reports the rows whose natural key was new as missed (finsync_reconcile_missed_rows_total,
//     etl_runs.error). Late data shows there as a count, and lands if it is at most
//     reconcile_lookback less the time to the next reconciliation late (four weeks by default);
//     what comes later than that is still lost (a backfill of its days loads it).
//  50. Fields finsync does not read are kept in raw. A record's own stay in its raw, which is the
//     record as received less what 35 drops (a categorization with its raw transaction, an account,
//     a contract, an analytics element). Members of the object around a user's records — beside
//     accountsOverview and, inside it, beside accountsView and creditsView; beside contracts; beside
//     observedTimespan and the module members of a person income, spending or risk document — go
//     into each of those records' raw under "_wrapper" (extract.WithWrapper), scrubbed by the
//     records' rules (an "owner" there is dropped as an account's is), compact with sorted keys, at
//     most 4 KiB as they repeat in every row (members beyond are left out, counted in "_left_out").
//     So account detection and contracts are read as whole documents (one request for both views).
//     A categorization page's members beside the paging fields are not kept: they describe the
//     page, not a transaction, and pages are streamed. A single-module document (household budget,
//     company modules, cockpits) is itself the raw of its top-level rows, unknown members included.
package fino
